use super::*;

fn order(shares: u32) -> Order {
    Order {
        locate: 1,
        side: ItchSide::Buy,
        price: 100,
        shares,
    }
}

#[test]
fn order_map_survives_collisions_and_deletes() {
    let mut m = OrderMap::with_capacity(4);
    // Many keys, removals in a scrambled order, growth along the way.
    for k in 0..5000u64 {
        assert!(m.insert(k * 7919, order(k as u32)));
    }
    assert!(!m.insert(7919, order(0)), "duplicate");
    for k in (0..5000u64).filter(|k| k % 3 != 0) {
        assert_eq!(m.remove(k * 7919).map(|o| o.shares), Some(k as u32));
    }
    for k in 0..5000u64 {
        let want = (k % 3 == 0).then_some(k as u32);
        assert_eq!(m.get(k * 7919).map(|o| o.shares), want, "key {k}");
    }
    assert_eq!(m.len(), 1667);
}
