use super::*;

fn l2(product: &str, time: &str) -> Vec<u8> {
    format!(r#"{{"type":"l2update","product_id":"{product}","changes":[["buy","1","1"]],"time":"{time}"}}"#).into_bytes()
}

#[test]
fn keys_follow_the_venue_sequence_and_time() {
    let mut k = LineKeys::default();
    assert_eq!(
        k.coinbase(br#"{"type":"match","product_id":"X","sequence":7,"price":"1"}"#),
        MessageKey::Sequenced {
            product: "X#match".into(),
            seq: 7
        }
    );
    let t = "2021-04-17T16:43:37.075687Z";
    let a = k.coinbase(&l2("X", t));
    let b = k.coinbase(&l2("X", t));
    let c = k.coinbase(&l2("Y", t));
    assert!(matches!(a, MessageKey::Timed { ordinal: 0, .. }));
    assert!(matches!(b, MessageKey::Timed { ordinal: 1, .. }));
    assert!(matches!(c, MessageKey::Timed { ordinal: 0, .. }));
    assert_eq!(
        k.coinbase(br#"{"type":"heartbeat","product_id":"X"}"#),
        MessageKey::Control
    );
    assert_eq!(k.coinbase(b"not json"), MessageKey::Unknown);
}

fn stream() -> Vec<Vec<u8>> {
    let mut stream: Vec<Vec<u8>> =
        vec![br#"{"type":"snapshot","product_id":"X","bids":[],"asks":[]}"#.to_vec()];
    for i in 0..200u64 {
        let time = format!("2021-04-17T16:43:{:02}.{:06}Z", 10 + i / 40, (i / 3) * 10);
        stream.push(l2("X", &time));
        if i % 7 == 0 {
            stream.push(
                format!(
                    r#"{{"type":"match","product_id":"X","sequence":{}}}"#,
                    100 + i
                )
                .into_bytes(),
            );
        }
    }
    stream
}

/// Plays line A (`a`, positions in the stream) and line B interleaved: B runs `lag`
/// messages behind A. Returns the positions passed, in order, and the verdicts seen.
fn play(
    a: &[usize],
    b: &[usize],
    lag: usize,
    a_down_at: Option<usize>,
) -> (Vec<usize>, Vec<Verdict>) {
    let s = stream();
    let (mut ka, mut kb, mut arb) = (LineKeys::default(), LineKeys::default(), Arbiter::default());
    let (mut passed, mut verdicts) = (Vec::new(), Vec::new());
    let (mut ia, mut ib) = (0, 0);
    let mut a_up = true;
    while ia < a.len() || ib < b.len() {
        if a_up && a_down_at == Some(ia) {
            a_up = false;
            arb.line_down(0);
            ia = a.len();
        }
        let take_a = ia < a.len() && (ib + lag >= ia || ib >= b.len());
        let (line, i, v) = if take_a {
            ia += 1;
            let i = a[ia - 1];
            (0, i, arb.admit(0, &ka.coinbase(&s[i]), ib < b.len()))
        } else {
            ib += 1;
            let i = b[ib - 1];
            (
                1,
                i,
                arb.admit(1, &kb.coinbase(&s[i]), a_up && ia < a.len()),
            )
        };
        let _ = line;
        verdicts.push(v);
        if matches!(v, Verdict::Pass | Verdict::Orphan) {
            passed.push(i);
        }
    }
    (passed, verdicts)
}

/// Both lines carry the stream, B five messages behind; A dies at message 80: every
/// message passes exactly once, in order.
#[test]
fn losing_a_line_loses_nothing() {
    let all: Vec<usize> = (0..stream().len()).collect();
    let (passed, verdicts) = play(&all, &all, 5, Some(80));
    assert_eq!(passed, all);
    assert!(!verdicts.contains(&Verdict::Orphan));
    // And the other way round: B dies (it simply stops).
    let (passed, _) = play(&all, &all[..60], 5, None);
    assert_eq!(passed, all);
}

/// A line that reconnects ahead of the other, after a hole, is held back until the two
/// overlap; nothing is passed twice and nothing is skipped.
#[test]
fn a_reconnected_line_waits_until_it_overlaps() {
    let s = stream();
    let (mut ka, mut kb, mut arb) = (LineKeys::default(), LineKeys::default(), Arbiter::default());
    let mut passed = Vec::new();
    let admit =
        |arb: &mut Arbiter, line: usize, k: &mut LineKeys, i: usize, passed: &mut Vec<usize>| {
            let v = arb.admit(line, &k.coinbase(&s[i]), true);
            if v == Verdict::Pass {
                passed.push(i);
            }
            v
        };
    for i in 0..100 {
        admit(&mut arb, 0, &mut ka, i, &mut passed);
        admit(&mut arb, 1, &mut kb, i, &mut passed);
    }
    // B drops and comes back at 150 while A is at 100: B's 150.. are held back.
    arb.line_down(1);
    let mut kb = LineKeys::default();
    for i in 150..160 {
        assert_eq!(
            admit(&mut arb, 1, &mut kb, i, &mut passed),
            Verdict::HeldBack
        );
    }
    for i in 100..170 {
        admit(&mut arb, 0, &mut ka, i, &mut passed);
    }
    // B overlaps at 160 (A passed it already) and is joined again.
    assert_eq!(
        admit(&mut arb, 1, &mut kb, 165, &mut passed),
        Verdict::Duplicate
    );
    for i in 170..s.len() {
        admit(&mut arb, 1, &mut kb, i, &mut passed);
        admit(&mut arb, 0, &mut ka, i, &mut passed);
    }
    assert_eq!(passed, (0..s.len()).collect::<Vec<_>>());
}

#[test]
fn a_line_alone_without_overlap_is_an_orphan() {
    let s = stream();
    let (mut ka, mut kb, mut arb) = (LineKeys::default(), LineKeys::default(), Arbiter::default());
    for m in &s[..50] {
        assert_eq!(arb.admit(0, &ka.coinbase(m), false), Verdict::Pass);
    }
    arb.line_down(0);
    assert_eq!(arb.admit(1, &kb.coinbase(&s[120]), false), Verdict::Orphan);
}

/// Line A passes the snapshot, then B runs ahead of A on every update (B is held back,
/// never overlapping by arriving second); A dies. Everything passes once, in order.
#[test]
fn a_line_running_ahead_takes_over_without_a_hole() {
    let s = stream();
    let (mut ka, mut kb) = (LineKeys::default(), LineKeys::default());
    let mut arb: Arbitrated<usize> = Arbitrated::default();
    let mut out = Vec::new();
    arb.offer(0, ka.coinbase(&s[0]), 0, true, &mut out).unwrap();
    arb.offer(1, kb.coinbase(&s[0]), 0, true, &mut out).unwrap();
    // B delivers 1..=100 before A delivers each of them; A dies after 60.
    let mut next_a = 1;
    for i in 1..s.len() {
        arb.offer(1, kb.coinbase(&s[i]), i, next_a <= 60, &mut out)
            .unwrap();
        if next_a <= 60 && i >= 5 {
            arb.offer(0, ka.coinbase(&s[next_a]), next_a, true, &mut out)
                .unwrap();
            next_a += 1;
            if next_a == 61 {
                arb.line_down(0);
            }
        }
    }
    // Each stream in order; streams of one product may interleave differently.
    let mut sorted = out.clone();
    sorted.sort();
    assert_eq!(sorted, (0..s.len()).collect::<Vec<_>>());
    for kind in [&b"l2update"[..], b"match"] {
        let of_kind: Vec<usize> = out
            .iter()
            .copied()
            .filter(|&i| s[i].windows(kind.len()).any(|w| w == kind))
            .collect();
        assert!(of_kind.windows(2).all(|w| w[0] < w[1]), "{of_kind:?}");
    }
}
