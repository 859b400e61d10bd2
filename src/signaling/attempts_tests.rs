//! The back-off for wrong access codes, with time passed in.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn wait_of(f: Failure) -> Duration {
    match f {
        Failure::Blocked { wait, .. } => wait,
        Failure::Counted => Duration::ZERO,
    }
}

#[test]
fn five_free_failures_then_waits_doubling_to_five_minutes() {
    let t0 = Instant::now();
    let mut table = AttemptTable::new(100);
    let a = ip("198.51.100.7");
    for _ in 1..FREE_FAILURES {
        assert_eq!(table.failed(a, t0), Failure::Counted);
        assert_eq!(table.check(a, t0), Ok(()));
    }
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..12 {
        let failure = table.failed(a, now);
        let wait = wait_of(failure);
        assert_eq!(table.check(a, now), Err(wait));
        assert!(table
            .check(a, now + wait - Duration::from_millis(1))
            .is_err());
        now += wait;
        assert_eq!(
            table.check(a, now),
            Ok(()),
            "free again once the wait is over"
        );
        waits.push(wait.as_secs());
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
}

#[test]
fn only_the_failure_that_starts_a_burst_is_flagged_for_the_log() {
    let t0 = Instant::now();
    let mut table = AttemptTable::new(100);
    let a = ip("198.51.100.7");
    let flagged = |f: Failure| {
        matches!(
            f,
            Failure::Blocked {
                first_of_burst: true,
                ..
            }
        )
    };
    let burst: Vec<bool> = (0..20).map(|_| flagged(table.failed(a, t0))).collect();
    assert_eq!(burst.iter().filter(|f| **f).count(), 1);
    assert!(burst[FREE_FAILURES as usize - 1]);
    // Quiet for longer than FORGET_AFTER: a new burst, five free tries again.
    let later = t0 + FORGET_AFTER + Duration::from_secs(1);
    assert_eq!(table.check(a, later), Ok(()));
    assert_eq!(table.failed(a, later), Failure::Counted);
}

#[test]
fn a_right_code_forgives_and_addresses_are_separate() {
    let t0 = Instant::now();
    let mut table = AttemptTable::new(100);
    let (a, b) = (ip("198.51.100.7"), ip("198.51.100.8"));
    for _ in 0..FREE_FAILURES {
        table.failed(a, t0);
    }
    assert!(table.check(a, t0).is_err());
    assert_eq!(table.check(b, t0), Ok(()));
    table.succeeded(a);
    assert_eq!(table.check(a, t0), Ok(()));
    assert!(table.is_empty());
}

#[test]
fn ipv6_addresses_count_per_64() {
    let t0 = Instant::now();
    let mut table = AttemptTable::new(100);
    for i in 0..FREE_FAILURES {
        // A host rotating through its /64 is still one client.
        table.failed(ip(&format!("2001:db8:1:2::{:x}", i + 1)), t0);
    }
    assert!(table.check(ip("2001:db8:1:2::ffff"), t0).is_err());
    assert_eq!(table.check(ip("2001:db8:1:3::1"), t0), Ok(()));
    assert_eq!(table.len(), 1);
}

#[test]
fn the_table_is_bounded_and_drops_the_stalest() {
    let t0 = Instant::now();
    let mut table = AttemptTable::new(3);
    for i in 0..10u32 {
        let addr = ip(&format!("203.0.113.{i}"));
        table.failed(addr, t0 + Duration::from_secs(u64::from(i)));
        assert!(table.len() <= 3);
    }
    let remembered = |n: u32| table.entries.contains_key(&ip(&format!("203.0.113.{n}")));
    assert!(remembered(9) && remembered(8) && remembered(7));
    assert!(!remembered(0));

    // A big table drops its stalest tenth at once when full.
    let mut table = AttemptTable::new(100);
    for i in 0..101u32 {
        let addr = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
        table.failed(addr, t0 + Duration::from_secs(u64::from(i)));
    }
    assert_eq!(table.len(), 91);
    assert!(!table.entries.contains_key(&IpAddr::from([10, 0, 0, 9])));
    assert!(table.entries.contains_key(&IpAddr::from([10, 0, 0, 10])));
}

#[test]
fn the_guard_counts_only_rooms_with_a_code_and_refuses_with_the_wait() {
    let mut codes = HubConfig::default();
    codes.room_codes.insert("family".into(), "fam".into());
    let guard = AccessGuard::new(codes);
    let a = ip("192.0.2.1");
    let t0 = Instant::now();
    for _ in 0..FREE_FAILURES {
        assert_eq!(guard.before_login("family", a, t0), None);
        guard.after_login("family", a, Err(LoginFailure::BadAccessCode), t0);
    }
    let t1 = t0 + Duration::from_millis(300);
    assert_eq!(
        guard.before_login("Family", a, t1),
        Some(LoginFailure::TooManyAttempts {
            retry_after_secs: 1
        }),
        "0.7 s left rounds up to 1"
    );
    assert_eq!(guard.before_login("lobby", a, t1), None, "no code, no wait");
    guard.after_login("lobby", a, Err(LoginFailure::BadAccessCode), t1);
    assert_eq!(guard.table().len(), 1);
}

#[test]
fn a_burst_of_wrong_codes_is_logged_once() {
    let guard = AccessGuard::new(HubConfig {
        global_code: Some("code".into()),
        ..HubConfig::default()
    });
    let t0 = Instant::now();
    let log = crate::signaling::test_log::logged_by(|| {
        for i in 0..30u64 {
            // One failure every 10 minutes minus a second: never quiet long enough to be
            // forgotten, so all thirty are one burst.
            let now = t0 + Duration::from_secs(599 * i);
            guard.after_login(
                "lobby",
                ip("2001:db8::7"),
                Err(LoginFailure::BadAccessCode),
                now,
            );
        }
    });
    assert_eq!(log.matches("wrong access codes").count(), 1, "{log}");
    assert!(
        log.contains("client=2001:db8::"),
        "the /64 is logged: {log}"
    );
    assert!(log.contains("failures=5"), "{log}");
}
