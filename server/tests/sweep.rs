//! The workers' sweep visits idle sessions about once a second, not every sweep interval,
//! and visits a session every interval while its connection is busy
//! (`tickwire_sweep_visits_total`, docs/operations.md).
//!
//! The sweep shares the thread that delivers ticks, so every visit to a session with nothing
//! to do delays deliveries; with 10,000 idle sessions, visiting each every 100 ms was
//! 100,000 visits a second.

mod common;

use std::time::Duration;

use common::{subscribe, Client, Raw, Server};

fn visits(server: &Server) -> (u64, u64) {
    let s = server.stats();
    (
        s["sweep_visits_flagged"].as_u64().unwrap(),
        s["sweep_visits_all"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn idle_sessions_are_visited_once_a_second_and_busy_ones_every_interval() {
    const IDLE: u64 = 40;
    // Default ping interval (15 s) and sweep interval (100 ms): the pass over every
    // session comes round once a second.
    let server = Server::start(&["--feed", "synthetic", "--symbols", "2", "--rate", "20"]);
    let idle: Vec<Raw> = (0..IDLE).map(|_| Raw::connect(server.port, None)).collect();
    // Their first flagged visits (a new session is flagged) are over after a pass or two.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (flagged_0, all_0) = visits(&server);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (flagged_1, all_1) = visits(&server);
    let all = all_1 - all_0;
    // Three seconds of once-a-second visits (give or take a pass at either end); a visit
    // every 100 ms would be 1,200.
    assert!(
        (2 * IDLE..=4 * IDLE).contains(&all),
        "{all} visits to {IDLE} idle sessions in 3 s"
    );
    assert!(
        flagged_1 - flagged_0 <= 2,
        "idle sessions were visited as flagged: {}",
        flagged_1 - flagged_0
    );

    // A session with data flowing is flagged each time its connection writes, so it is
    // visited (its counters moved to the metrics, its lag checked) at every pass.
    let mut busy = Client::connect(&server).await;
    busy.send(subscribe(1, &["SYM0000", "SYM0001"], &["quote", "trade"]))
        .await;
    busy.collect_for(Duration::from_millis(500)).await;
    let (flagged_2, _) = visits(&server);
    let got = busy.collect_for(Duration::from_secs(2)).await;
    let (flagged_3, _) = visits(&server);
    assert!(got.len() >= 20, "only {} messages in 2 s", got.len());
    let flagged = flagged_3 - flagged_2;
    assert!(
        (10..=40).contains(&flagged),
        "{flagged} flagged visits in 2 s to a session receiving data"
    );
    drop(idle);
}
