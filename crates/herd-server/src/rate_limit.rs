//! Limits on failed authentication that stop attackers, not users.
//!
//! What is counted: failures (and, for password checks, attempts still being evaluated) per *subject* — an
//! address, an account, or an (address, account) pair. Successes are never counted. A password attempt first
//! reserves a slot against every subject it concerns ([`FailureLimiter::begin`]); the slot becomes a failure or
//! is released when the answer is known. So N simultaneous bad attempts cannot all slip past a budget of B:
//! at most B are evaluated, the rest are refused before the expensive argon2 work. Cheap checks (a session or
//! device token is a hash lookup, an enroll secret a comparison in memory) run first and are never refused:
//! only *bad* credentials beyond the budget get 429 instead of 401 ([`FailureLimiter::record_failure`]).
//!
//! Window: failures are kept in two generations of `window` each (the current one and the one before), so a
//! subject's count covers the last one to two windows; a subject stays refused until its failures in both
//! generations fall below the budget. Memory is bounded: at most `max_subjects` subjects per generation, keyed
//! by a 64-bit keyed hash (never the email itself). A full generation is rotated early — counts from before
//! the previous generation are forgotten — which costs O(1) under the lock (maps of plain integers free
//! without walking their entries). No scan over subjects ever happens on the request path.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One window of the limits below: failures are counted over the last one to two of them.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Failed password checks for one account from one address, per window (Fleet's 10 a minute per address).
pub const PASSWORD_FAILURES_PER_ADDRESS_AND_ACCOUNT: u32 = 10;
/// Failed password checks for one account from all addresses together, per window: looser, so an attacker
/// must use several addresses before the account's owner is slowed down, and the CPU spent on one account's
/// argon2 stays bounded whatever the number of addresses.
pub const PASSWORD_FAILURES_PER_ACCOUNT: u32 = 50;
/// Bad session tokens (bearer or console cookie), device tokens and enroll secrets from one address, per
/// window. Valid ones are never refused, so this only decides when a flood of bad ones gets 429.
pub const BAD_TOKENS_PER_ADDRESS: u32 = 100;
/// Subjects remembered per generation (each about 16 bytes).
pub const MAX_SUBJECTS: usize = 100_000;

/// What failures are counted against.
#[derive(Debug, Clone, Copy, Hash)]
pub enum Subject<'a> {
    Address(IpAddr),
    /// An account (the normalised email typed at login, or the user's email).
    Account(&'a str),
    AddressAndAccount(IpAddr, &'a str),
}

/// A subject with its budget, and the reason given when it is exhausted.
#[derive(Debug, Clone, Copy)]
pub struct Rule<'a> {
    pub subject: Subject<'a>,
    pub budget: u32,
    pub reason: &'static str,
}

/// The address failures are counted against: an IPv4 address as it is, an IPv6 address by its /64 (one host
/// or site is usually given a whole /64, and could otherwise spread its attempts over 2^64 addresses).
pub fn counted_address(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1))),
        },
    }
}

/// The rules for a password check of `account` (a normalised email) from `client`. `familiar`: the account
/// logged in from this address recently ([`FamiliarPairs`]); then only the pair's own budget applies, so an
/// account attacked from many addresses stays open to its owner where they logged in before.
pub fn password_rules(client: IpAddr, account: &str, familiar: bool) -> Vec<Rule<'_>> {
    let mut rules = vec![Rule {
        subject: Subject::AddressAndAccount(counted_address(client), account),
        budget: PASSWORD_FAILURES_PER_ADDRESS_AND_ACCOUNT,
        reason: "too many failed password attempts for this account from your address",
    }];
    if !familiar {
        rules.push(Rule {
            subject: Subject::Account(account),
            budget: PASSWORD_FAILURES_PER_ACCOUNT,
            reason: "too many failed password attempts for this account",
        });
    }
    rules
}

/// How long a successful login makes its (address, account) pair familiar: one to two of these.
pub const FAMILIAR_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// (address, account) pairs that logged in successfully in the last one to two `FAMILIAR_FOR` (the same two
/// generations and cap as the limiter; per server, in memory).
pub struct FamiliarPairs {
    seen: FailureLimiter,
}

impl Default for FamiliarPairs {
    fn default() -> Self {
        FamiliarPairs { seen: FailureLimiter::new(FAMILIAR_FOR, MAX_SUBJECTS) }
    }
}

impl FamiliarPairs {
    fn rule(client: IpAddr, account: &str) -> [Rule<'_>; 1] {
        [Rule { subject: Subject::AddressAndAccount(counted_address(client), account), budget: u32::MAX, reason: "" }]
    }

    pub fn remember(&self, client: IpAddr, account: &str, now: Instant) {
        let _ = self.seen.record_failure(&Self::rule(client, account), now);
    }

    pub fn knows(&self, client: IpAddr, account: &str, now: Instant) -> bool {
        let key = self.seen.key(&Self::rule(client, account)[0].subject);
        let mut counts = self.seen.lock();
        let freed = counts.rotate(now, self.seen.window);
        let known = counts.failures(key) > 0;
        drop(counts);
        drop(freed);
        known
    }
}

/// The rule for bad tokens or secrets of one kind from `client`.
pub fn address_rule(client: IpAddr, reason: &'static str) -> Rule<'static> {
    Rule { subject: Subject::Address(counted_address(client)), budget: BAD_TOKENS_PER_ADDRESS, reason }
}

/// A refused attempt: why, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub retry_after_s: u64,
    pub reason: &'static str,
}

pub struct FailureLimiter {
    window: Duration,
    max_subjects: usize,
    hasher: std::collections::hash_map::RandomState,
    counts: Mutex<Counts>,
}

struct Counts {
    current_start: Instant,
    current: HashMap<u64, u32>,
    previous: HashMap<u64, u32>,
    /// Attempts reserved and not yet settled; an entry leaves when its count returns to zero, so this holds
    /// at most as many entries as there are requests in flight.
    in_flight: HashMap<u64, u32>,
}

impl Counts {
    fn failures(&self, key: u64) -> u32 {
        self.previous.get(&key).copied().unwrap_or(0).saturating_add(self.current.get(&key).copied().unwrap_or(0))
    }

    fn in_flight(&self, key: u64) -> u32 {
        self.in_flight.get(&key).copied().unwrap_or(0)
    }

    /// Moves to the generation `now` falls in. Returns the maps that were let go, to be freed after the lock.
    fn rotate(&mut self, now: Instant, window: Duration) -> Option<HashMap<u64, u32>> {
        let elapsed = now.saturating_duration_since(self.current_start);
        if elapsed < window {
            return None;
        }
        let current = std::mem::take(&mut self.current);
        if elapsed >= window * 2 {
            self.current_start = now;
            self.previous.clear();
            Some(current)
        } else {
            self.current_start += window;
            Some(std::mem::replace(&mut self.previous, current))
        }
    }

    fn add_failure(&mut self, key: u64, now: Instant, max_subjects: usize) -> Option<HashMap<u64, u32>> {
        let mut freed = None;
        if self.current.len() >= max_subjects && !self.current.contains_key(&key) {
            // Full: start a new generation now. Cheap, and an attacker who fills it has paid for every entry
            // with a failure that each of its subjects' budgets also counted.
            self.current_start = now;
            freed = Some(std::mem::replace(&mut self.previous, std::mem::take(&mut self.current)));
        }
        let count = self.current.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        freed
    }

    fn release(&mut self, key: u64) {
        if let Some(count) = self.in_flight.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                self.in_flight.remove(&key);
            }
        }
    }

    /// How long until `key` is below `budget` again, counting only its failures.
    fn retry_after(&self, key: u64, budget: u32, now: Instant, window: Duration) -> Duration {
        let current = self.current.get(&key).copied().unwrap_or(0);
        let failures = self.failures(key);
        let rotation = (self.current_start + window).saturating_duration_since(now);
        if failures < budget {
            // Only attempts in flight fill the budget: they settle within a second or so.
            Duration::from_secs(1)
        } else if current >= budget {
            rotation + window
        } else {
            rotation
        }
    }
}

fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

impl FailureLimiter {
    pub fn new(window: Duration, max_subjects: usize) -> Self {
        FailureLimiter {
            window,
            max_subjects,
            hasher: Default::default(),
            counts: Mutex::new(Counts {
                current_start: Instant::now(),
                current: HashMap::new(),
                previous: HashMap::new(),
                in_flight: HashMap::new(),
            }),
        }
    }

    fn key(&self, subject: &Subject<'_>) -> u64 {
        self.hasher.hash_one(subject)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refusal(&self, counts: &Counts, key: u64, rule: &Rule<'_>, now: Instant) -> Refusal {
        let wait = counts.retry_after(key, rule.budget, now, self.window);
        Refusal { retry_after_s: whole_seconds(wait).max(1), reason: rule.reason }
    }

    /// Reserves an attempt against every rule, before the expensive check: refused when, for any rule, the
    /// subject's failures plus its attempts in flight have reached the budget. Settle the attempt with
    /// [`Attempt::succeeded`] or [`Attempt::failed`]; an attempt dropped unsettled (the client went away while
    /// the check ran) counts as failed, so walking away cannot buy free guesses.
    pub fn begin(&self, rules: &[Rule<'_>], now: Instant) -> Result<Attempt<'_>, Refusal> {
        let keys: Vec<u64> = rules.iter().map(|rule| self.key(&rule.subject)).collect();
        let mut counts = self.lock();
        let freed = counts.rotate(now, self.window);
        for (rule, &key) in rules.iter().zip(&keys) {
            if counts.failures(key).saturating_add(counts.in_flight(key)) >= rule.budget {
                let refusal = self.refusal(&counts, key, rule, now);
                drop(counts);
                drop(freed);
                return Err(refusal);
            }
        }
        for &key in &keys {
            *counts.in_flight.entry(key).or_insert(0) += 1;
        }
        drop(counts);
        drop(freed);
        Ok(Attempt { limiter: self, keys, settled: false })
    }

    /// Counts a failure of a cheap check (done already, whatever the budget): Err when this failure is beyond
    /// some rule's budget, so the caller answers 429 instead of 401.
    pub fn record_failure(&self, rules: &[Rule<'_>], now: Instant) -> Result<(), Refusal> {
        let mut counts = self.lock();
        let mut freed = vec![counts.rotate(now, self.window)];
        let mut refusal = None;
        for rule in rules {
            let key = self.key(&rule.subject);
            freed.push(counts.add_failure(key, now, self.max_subjects));
            if refusal.is_none() && counts.failures(key) > rule.budget {
                refusal = Some(self.refusal(&counts, key, rule, now));
            }
        }
        drop(counts);
        drop(freed);
        refusal.map_or(Ok(()), Err)
    }

    fn settle(&self, keys: &[u64], failed: bool, now: Instant) {
        let mut counts = self.lock();
        let mut freed = vec![counts.rotate(now, self.window)];
        for &key in keys {
            counts.release(key);
            if failed {
                freed.push(counts.add_failure(key, now, self.max_subjects));
            }
        }
        drop(counts);
        drop(freed);
    }

    /// Subjects remembered now (both generations) and attempts in flight: for tests and metrics.
    pub fn sizes(&self) -> (usize, usize) {
        let counts = self.lock();
        (counts.current.len() + counts.previous.len(), counts.in_flight.values().map(|&n| n as usize).sum())
    }
}

/// A reserved attempt (see [`FailureLimiter::begin`]).
pub struct Attempt<'a> {
    limiter: &'a FailureLimiter,
    keys: Vec<u64>,
    settled: bool,
}

impl Attempt<'_> {
    /// The credential was right: the slot is released and nothing is counted.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.limiter.settle(&self.keys, false, Instant::now());
    }

    /// The credential was wrong: the slot becomes a failure.
    pub fn failed(self) {
        self.failed_at(Instant::now())
    }

    fn failed_at(mut self, now: Instant) {
        self.settled = true;
        self.limiter.settle(&self.keys, true, now);
    }

    /// The check could not be made (the database was unavailable): nothing is counted.
    pub fn abandon(mut self) {
        self.settled = true;
        self.limiter.settle(&self.keys, false, Instant::now());
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.limiter.settle(&self.keys, true, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Barrier};

    const A: &str = "alice@example.com";
    const B: &str = "bob@example.com";

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn fail_password(limiter: &FailureLimiter, client: IpAddr, account: &str, now: Instant) -> Result<(), Refusal> {
        limiter.begin(&password_rules(client, account, false), now)?.failed_at(now);
        Ok(())
    }

    #[test]
    fn password_failures_are_counted_per_address_and_account() {
        let limiter = FailureLimiter::new(WINDOW, MAX_SUBJECTS);
        let (proxy, other) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let t0 = Instant::now();
        for _ in 0..PASSWORD_FAILURES_PER_ADDRESS_AND_ACCOUNT {
            fail_password(&limiter, proxy, A, t0).unwrap();
        }
        let refusal = limiter.begin(&password_rules(proxy, A, false), t0).err().expect("refused");
        assert_eq!(refusal.reason, "too many failed password attempts for this account from your address");
        assert_eq!(refusal.retry_after_s, 120, "failures of the current window are kept through the next");
        assert!(limiter.begin(&password_rules(proxy, B, false), t0).is_ok(), "another account from the same address");
        assert!(limiter.begin(&password_rules(other, A, false), t0).is_ok(), "the same account from another address");
    }

    #[test]
    fn an_account_under_attack_from_many_addresses_is_limited_as_a_whole() {
        let limiter = FailureLimiter::new(WINDOW, MAX_SUBJECTS);
        let t0 = Instant::now();
        for i in 0..PASSWORD_FAILURES_PER_ACCOUNT {
            fail_password(&limiter, IpAddr::from([10, 1, (i / 250) as u8, (i % 250) as u8]), A, t0).unwrap();
        }
        let refusal = limiter.begin(&password_rules(ip("192.168.1.1"), A, false), t0).err().expect("refused");
        assert_eq!(refusal.reason, "too many failed password attempts for this account");
        assert!(limiter.begin(&password_rules(ip("192.168.1.1"), B, false), t0).is_ok());
    }

    #[test]
    fn the_owner_logs_in_where_they_did_before_while_the_account_is_attacked_elsewhere() {
        let limiter = FailureLimiter::new(WINDOW, MAX_SUBJECTS);
        let familiar = FamiliarPairs::default();
        let (office, home) = (ip("192.0.2.10"), ip("198.51.100.7"));
        let t0 = Instant::now();
        familiar.remember(office, A, t0);
        for i in 0..PASSWORD_FAILURES_PER_ACCOUNT {
            fail_password(&limiter, IpAddr::from([10, 2, 0, i as u8]), A, t0).unwrap();
        }
        let rules = |client| password_rules(client, A, familiar.knows(client, A, t0));
        assert!(limiter.begin(&rules(home), t0).is_err(), "an unfamiliar address meets the account's limit");
        limiter.begin(&rules(office), t0).expect("the familiar address only has its own budget").succeeded();
        assert!(familiar.knows(office, A, t0 + FAMILIAR_FOR));
        assert!(!familiar.knows(office, A, t0 + FAMILIAR_FOR * 3), "familiarity fades");
        assert!(!familiar.knows(office, B, t0), "per account");
    }

    #[test]
    fn failures_age_out_over_two_generations() {
        let limiter = FailureLimiter::new(Duration::from_secs(60), MAX_SUBJECTS);
        let client = ip("10.0.0.1");
        let t0 = limiter.lock().current_start;
        for _ in 0..5 {
            fail_password(&limiter, client, A, t0).unwrap();
        }
        for _ in 0..5 {
            fail_password(&limiter, client, A, t0 + Duration::from_secs(70)).unwrap();
        }
        let refused = limiter.begin(&password_rules(client, A, false), t0 + Duration::from_secs(80)).err().unwrap();
        assert_eq!(refused.retry_after_s, 40, "until the first five leave with their generation");
        let later = limiter.begin(&password_rules(client, A, false), t0 + Duration::from_secs(121));
        later.expect("the first five are forgotten").succeeded();
        assert_eq!(limiter.sizes(), (2, 0), "the last five, for the pair and the account");
        let _pause = limiter.begin(&password_rules(client, A, false), t0 + Duration::from_secs(500)).unwrap();
        assert_eq!(limiter.sizes(), (0, 2), "a long pause forgets everything; one attempt (two subjects) in flight");
    }

    #[test]
    fn attempts_in_flight_count_against_the_budget_until_settled() {
        let limiter = FailureLimiter::new(WINDOW, MAX_SUBJECTS);
        let client = ip("10.0.0.1");
        let now = Instant::now();
        let attempts: Vec<Attempt<'_>> = (0..PASSWORD_FAILURES_PER_ADDRESS_AND_ACCOUNT)
            .map(|_| limiter.begin(&password_rules(client, A, false), now).unwrap())
            .collect();
        let refusal = limiter.begin(&password_rules(client, A, false), now).err().expect("all slots are taken");
        assert_eq!(refusal.retry_after_s, 1, "slots in flight free up soon");
        let mut attempts = attempts.into_iter();
        attempts.next().unwrap().succeeded();
        attempts.next().unwrap().abandon();
        assert!(limiter.begin(&password_rules(client, A, false), now).is_ok(), "released slots are free again");
        drop(attempts); // eight unsettled attempts: counted as failures
        assert_eq!(limiter.sizes().1, 0);
        assert_eq!(limiter.lock().failures(limiter.key(&Subject::AddressAndAccount(client, A))), 9);
    }

    #[test]
    fn many_threads_at_once_get_at_most_the_budget_evaluated() {
        let limiter = Arc::new(FailureLimiter::new(WINDOW, MAX_SUBJECTS));
        let evaluated = Arc::new(AtomicU32::new(0));
        let threads = 64;
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (limiter, evaluated, start) = (limiter.clone(), evaluated.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..10 {
                        if let Ok(attempt) = limiter.begin(&password_rules(ip("10.0.0.1"), A, false), Instant::now()) {
                            evaluated.fetch_add(1, Ordering::SeqCst);
                            std::thread::yield_now(); // the "argon2" happens here
                            attempt.failed();
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(evaluated.load(Ordering::SeqCst), PASSWORD_FAILURES_PER_ADDRESS_AND_ACCOUNT);
    }

    #[test]
    fn ipv6_addresses_are_counted_by_their_64_bit_prefix() {
        assert_eq!(counted_address(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(counted_address(ip("2001:db8:1:2:ffff:1:2:3")), ip("2001:db8:1:2::"));
        assert_eq!(counted_address(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(counted_address(ip("10.1.2.3")), ip("10.1.2.3"));
        let limiter = FailureLimiter::new(WINDOW, MAX_SUBJECTS);
        let now = Instant::now();
        for i in 0..PASSWORD_FAILURES_PER_ADDRESS_AND_ACCOUNT {
            fail_password(&limiter, ip(&format!("2001:db8:1:2::{i:x}")), A, now).unwrap();
        }
        assert!(limiter.begin(&password_rules(ip("2001:db8:1:2::ffff"), A, false), now).is_err(), "same /64");
        assert!(limiter.begin(&password_rules(ip("2001:db8:1:3::1"), A, false), now).is_ok(), "another /64");
    }

    #[test]
    fn cheap_checks_count_failures_and_refuse_only_beyond_the_budget() {
        let limiter = FailureLimiter::new(WINDOW, MAX_SUBJECTS);
        let rule = [address_rule(ip("10.0.0.1"), "too many bad tokens from your address")];
        let now = Instant::now();
        for _ in 0..BAD_TOKENS_PER_ADDRESS {
            assert!(limiter.record_failure(&rule, now).is_ok());
        }
        let refusal = limiter.record_failure(&rule, now).unwrap_err();
        assert_eq!(refusal.reason, "too many bad tokens from your address");
        assert!(limiter.record_failure(&[address_rule(ip("10.0.0.2"), "x")], now).is_ok());
    }

    #[test]
    fn memory_stays_bounded_under_a_spray_of_subjects() {
        let limiter = FailureLimiter::new(WINDOW, 1_000);
        let now = Instant::now();
        for i in 0..50_000u32 {
            let _ = limiter.record_failure(&[address_rule(IpAddr::from(i.to_be_bytes()), "x")], now);
        }
        let (remembered, in_flight) = limiter.sizes();
        assert!(remembered <= 2_000, "{remembered} subjects remembered");
        assert_eq!(in_flight, 0);
        // The newest subjects are still counted.
        let newest =
            [Rule { subject: Subject::Address(IpAddr::from(49_999u32.to_be_bytes())), budget: 1, reason: "x" }];
        assert!(limiter.record_failure(&newest, now).is_err());
    }
}
