//! Acceptance 4: restart nats-server: the engine and the gateways reconnect and
//! resynchronize without a restart of their own; clients see stale while NATS is down and
//! live, with fresh values, after.

use std::time::Duration;

use crate::support::*;

#[test]
fn engine_and_gateways_resynchronize_after_a_nats_restart() {
    let mut nats = Nats::start(false);
    let engine = Tickwire::engine(&nats, &["--symbols", "4", "--rate", "400"]);
    let g1 = Tickwire::gateway(&nats, &[]);
    let g2 = Tickwire::gateway(&nats, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c1 = Client::connect(&g1.ws_url()).await;
        c1.subscribe(&["SYM0001"], &["quote"]).await;
        let mut c2 = Client::connect(&g2.ws_url()).await;
        c2.subscribe(&["SYM0002"], &["quote"]).await;
        let mut before = Vec::new();
        for c in [&mut c1, &mut c2] {
            let got = c.collect_for(Duration::from_millis(700)).await;
            assert!(
                got.iter().filter(|m| kind(m) == "quote").count() > 5,
                "no data before the restart"
            );
            before.push(got);
        }
        let last_seq = |msgs: &[serde_json::Value]| {
            msgs.iter().filter_map(|m| m["seq"].as_u64()).max().unwrap()
        };

        nats.kill();
        for c in [&mut c1, &mut c2] {
            c.until(Duration::from_secs(5), |m| is_status(m, "stale"))
                .await;
        }
        wait_until(
            Duration::from_secs(5),
            "gateways and engine to report NATS down",
            || !g1.ready() && !g2.ready() && engine.stats()["cluster"]["nats_connected"] == false,
        );

        nats.restart();
        for (i, c) in [&mut c1, &mut c2].into_iter().enumerate() {
            let got = c
                .until(Duration::from_secs(10), |m| is_status(m, "live"))
                .await;
            // After live: fresh quotes, seq above anything seen before the restart.
            let after = c
                .until(Duration::from_secs(5), |m| kind(m) == "quote")
                .await;
            let seq = after.last().unwrap()["seq"].as_u64().unwrap();
            assert!(seq > last_seq(&before[i]), "seq did not move on: {seq}");
            let mut all = before[i].clone();
            all.extend(got);
            all.extend(after);
            // Quotes only: seq strictly increasing across the outage (trades published while
            // NATS was down are lost, as the stale status said).
            assert_no_gap(&all, "across the restart");
        }
        wait_until(Duration::from_secs(5), "everyone ready again", || {
            g1.ready() && g2.ready() && engine.stats()["cluster"]["nats_connected"] == true
        });
        // And it keeps flowing.
        let more = c1.collect_for(Duration::from_millis(500)).await;
        assert!(more.iter().filter(|m| kind(m) == "quote").count() > 3);
        assert!(g1.stats()["cluster"]["snapshots_applied"].as_u64().unwrap() >= 2);
    });
}
