//! Acceptance 1: one engine, two gateways, clients on both: each client gets exactly the
//! streams it subscribed to, with the same values as a client of `tickwire serve` on the
//! same (seeded) feed; gateways follow in NATS only the symbols their clients want.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

const FEED: [&str; 8] = [
    "--feed",
    "synthetic",
    "--symbols",
    "8",
    "--rate",
    "400",
    "--seed",
    "7",
];

/// The messages of one (symbol, type) stream, by chan_seq.
fn streams(msgs: &[Value]) -> HashMap<(String, String), Vec<Value>> {
    let mut out: HashMap<(String, String), Vec<Value>> = HashMap::new();
    for m in msgs {
        let k = kind(m);
        if matches!(k, "quote" | "trade" | "book") {
            out.entry((m["symbol"].as_str().unwrap().to_string(), k.to_string()))
                .or_default()
                .push(m.clone());
        }
    }
    out
}

/// Every message of `got` (after the subscription snapshot) must be the reference's message
/// at the same position of the stream: positions differ by a constant chan_seq offset (the
/// engine's seq base). Returns how many messages were compared.
fn assert_same_values(got: &[Value], reference: &[Value], what: &str) -> usize {
    let chan = |m: &Value| m["chan_seq"].as_u64().unwrap() as i128;
    // Align on a run of five consecutive equal messages.
    let got_updates = &got[1..];
    let window = 5;
    assert!(
        got_updates.len() > window,
        "{what}: too few messages ({})",
        got.len()
    );
    let matches_at = |i: usize, j: usize| {
        (0..window).all(|k| match (got_updates.get(i + k), reference.get(j + k)) {
            (Some(g), Some(r)) => values(g) == values(r),
            _ => false,
        })
    };
    // Either stream may have started first.
    let offset = (0..got_updates.len().min(100))
        .find_map(|i| {
            (0..reference.len())
                .find(|&j| matches_at(i, j))
                .map(|j| (i, j))
        })
        .map(|(i, j)| chan(&got_updates[i]) - chan(&reference[j]))
        .unwrap_or_else(|| {
            panic!(
                "{what}: the gateway's stream does not appear in serve's:\n{}\nvs\n{}",
                got_updates[0], reference[0]
            )
        });
    let by_chan: HashMap<i128, &Value> = reference.iter().map(|m| (chan(m) + offset, m)).collect();
    let mut compared = 0;
    for m in got_updates {
        if let Some(r) = by_chan.get(&chan(m)) {
            assert_eq!(
                values(m),
                values(r),
                "{what}: differs from serve at chan_seq {}",
                chan(m)
            );
            compared += 1;
        }
    }
    compared
}

#[test]
fn gateways_serve_exactly_the_subscribed_streams_with_the_values_of_serve() {
    let nats = Nats::start(false);
    let reference = Tickwire::start("serve", &FEED);
    let _engine = Tickwire::engine(&nats, &FEED);
    let g1 = Tickwire::gateway(&nats, &[]);
    // A list of NATS servers whose first one is down: the client uses the next.
    let servers = format!("nats://127.0.0.1:{},{}", free_port(), nats.url());
    let g2 = Tickwire::start("gateway", &["--nats-url", &servers]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut r = Client::connect(&reference.ws_url()).await;
        r.subscribe(
            &["SYM0001", "SYM0002", "SYM0005"],
            &["quote", "trade", "book"],
        )
        .await;
        let mut c1 = Client::connect(&g1.ws_url()).await;
        c1.subscribe(&["SYM0001"], &["quote", "trade", "book"])
            .await;
        let mut c2 = Client::connect(&g2.ws_url()).await;
        c2.subscribe(&["SYM0002"], &["quote"]).await;
        c2.subscribe(&["SYM0005"], &["book", "trade"]).await;
        let mut c3 = Client::connect(&g2.ws_url()).await;
        c3.subscribe(&["SYM0001"], &["quote", "trade", "book"])
            .await;
        let window = Duration::from_secs(4);
        let (r, m1, m2, m3) = tokio::join!(
            r.collect_for(window + Duration::from_millis(500)),
            c1.collect_for(window),
            c2.collect_for(window),
            c3.collect_for(window)
        );

        // Exactly the subscribed streams.
        for (msgs, allowed, who) in [
            (
                &m1,
                vec![
                    ("SYM0001", "quote"),
                    ("SYM0001", "trade"),
                    ("SYM0001", "book"),
                ],
                "c1",
            ),
            (
                &m2,
                vec![
                    ("SYM0002", "quote"),
                    ("SYM0005", "book"),
                    ("SYM0005", "trade"),
                ],
                "c2",
            ),
            (
                &m3,
                vec![
                    ("SYM0001", "quote"),
                    ("SYM0001", "trade"),
                    ("SYM0001", "book"),
                ],
                "c3",
            ),
        ] {
            for m in msgs.iter() {
                match kind(m) {
                    "subscribed" => {}
                    "quote" | "trade" | "book" => {
                        let key = (m["symbol"].as_str().unwrap(), kind(m));
                        assert!(
                            allowed.contains(&key),
                            "{who} got {key:?}, subscribed to {allowed:?}"
                        );
                    }
                    other => panic!("{who}: unexpected {other}: {m}"),
                }
            }
            let s = streams(msgs);
            for key in &allowed {
                assert!(
                    s.contains_key(&(key.0.to_string(), key.1.to_string())),
                    "{who} got nothing of {key:?}"
                );
            }
            assert!(assert_no_gap(msgs, who) > 50, "{who}: too little data");
        }

        // The same values as serve, stream by stream.
        let reference = streams(&r);
        let mut compared = 0;
        for (msgs, who) in [(&m1, "c1"), (&m2, "c2"), (&m3, "c3")] {
            for (key, got) in streams(msgs) {
                let what = format!("{who} {key:?}");
                let quote_or_book = key.1 != "trade";
                if quote_or_book || got.len() > 6 {
                    compared += assert_same_values(&got, &reference[&key], &what);
                }
            }
        }
        assert!(compared > 300, "only {compared} messages compared");

        // Two gateways of one engine: the same seq carries the same values.
        let by_seq = |msgs: &[Value]| -> HashMap<u64, Value> {
            msgs.iter()
                .filter(|m| {
                    m["symbol"] == "SYM0001" && matches!(kind(m), "quote" | "trade" | "book")
                })
                .map(|m| (m["seq"].as_u64().unwrap(), m.clone()))
                .collect()
        };
        let (s1, s3) = (by_seq(&m1), by_seq(&m3));
        let common: Vec<_> = s1.keys().filter(|k| s3.contains_key(k)).collect();
        assert!(
            common.len() > 50,
            "gateways overlap on {} messages",
            common.len()
        );
        for k in common {
            assert_eq!(s1[k], s3[k], "gateways disagree at seq {k}");
        }

        // Interest: each gateway follows in NATS what its clients want, and drops it.
        let subs = nats.subscriptions();
        let g1_subs = &subs[&g1.gateway_name()];
        let g2_subs = &subs[&g2.gateway_name()];
        assert!(
            g1_subs.contains(&"md.synthetic.SYM0001.*".to_string()),
            "{g1_subs:?}"
        );
        assert!(
            !g1_subs
                .iter()
                .any(|s| s.contains("SYM0002") || s.contains("SYM0005")),
            "{g1_subs:?}"
        );
        for s in ["SYM0001", "SYM0002", "SYM0005"] {
            assert!(
                g2_subs.contains(&format!("md.synthetic.{s}.*")),
                "{g2_subs:?}"
            );
        }
        assert!(
            !g2_subs.iter().any(|s| s.contains("SYM0003")),
            "{g2_subs:?}"
        );
        drop(c2);
        wait_until(
            Duration::from_secs(5),
            "g2 to drop SYM0002 and SYM0005",
            || {
                let subs = nats.subscriptions();
                let s = &subs[&g2.gateway_name()];
                !s.iter()
                    .any(|s| s.contains("SYM0002") || s.contains("SYM0005"))
                    && s.contains(&"md.synthetic.SYM0001.*".to_string())
            },
        );
        assert_eq!(g2.stats()["cluster"]["followed_symbols"], 1);
        assert_eq!(g1.stats()["cluster"]["gaps"], 0);
    });
}
