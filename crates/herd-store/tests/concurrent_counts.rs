//! Concurrency: many tasks at once — reports, policy edits (query, script), policy deletions, host
//! deletions, transfers (several of one host at once), team deletions, automation resets, deferrable
//! automations, pruning of voided answers, seen-time flushes — and after every round the delta-maintained
//! counts equal a recount of the answers. On PostgreSQL (where it bites: every
//! statement of every task interleaves) and on SQLite (one writer; the same code must hold there too).
//!
//! The sequential property test (`policy_counts.rs`) cannot see a read-then-write race; this suite exists
//! for them: each task reads what it is about to change while others change it.

#[macro_use]
mod common;

use herd_core::policy::PolicyResponse;
use herd_core::vitals::VitalsPatch;
use herd_store::{AutomationRules, EnrollHost, FiringPolicy, NewJob, PolicyFields, ReportedAnswer, Store, StoreError};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::sync::Barrier;

store_cases!(multi_thread; counts_equal_a_recount_under_concurrent_change, a_burst_of_writes_is_each_acknowledged_alone);

const ROUNDS: usize = 6;
const HOSTS: usize = 24;
const REPORTS_PER_HOST: usize = 2;
const NOW: i64 = 1_750_000_000_000;

/// A small deterministic generator (the rounds must be reproducible when they fail).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

fn fields(name: &str, query: &str, script_id: Option<i64>) -> PolicyFields {
    PolicyFields { script_id, ..PolicyFields::new(name, query) }
}

fn enrollment(name: &str, key: &str, team: Option<i64>) -> EnrollHost {
    EnrollHost {
        uuid: name.into(),
        osquery_host_id: name.into(),
        node_key_hash: key.into(),
        team_id: team,
        platform_hint: "linux".into(),
        details: VitalsPatch::default(),
    }
}

async fn enroll(store: &Store, name: &str, team: Option<i64>) -> i64 {
    store.enroll_host(&enrollment(name, &format!("key-{name}"), team), NOW).await.unwrap().checkin.id
}

/// One webhook job per firing policy, enqueued in the report's transaction like the server's.
fn webhook_job(firing: &FiringPolicy<'_>) -> Vec<NewJob> {
    vec![NewJob {
        idempotency_key: format!("hook:{}:{}:{}", firing.policy_id, firing.host_id, firing.now),
        payload: herd_core::jobs::JobPayload::FailingPolicyWebhook {
            policy_id: firing.policy_id,
            host_id: firing.host_id,
            failed_at: firing.now,
            destination_url: String::new(),
        },
        max_attempts: 1,
        run_at: firing.now,
    }]
}

#[derive(Debug, Clone)]
enum Task {
    Report { host: i64, answers: Vec<(i64, Option<i64>, PolicyResponse)> },
    EditQuery { policy: i64, name: String, query: String, script: Option<i64> },
    EditScript { policy: i64, name: String, query: String, script: Option<i64> },
    DeletePolicies { policies: Vec<i64> },
    Prune,
    FlushSeen { hosts: Vec<i64> },
    DeleteHost { host: i64 },
    Reenroll { name: String, key: String },
    Transfer { hosts: Vec<i64>, team: Option<i64> },
    DeleteTeam { team: i64 },
    ResetAutomations { policies: Vec<i64> },
}

async fn run(store: Store, task: Task, clock: Arc<AtomicI64>) {
    let now = clock.fetch_add(1, Ordering::Relaxed);
    match task {
        Task::Report { host, answers } => {
            let answers: Vec<ReportedAnswer> = answers
                .into_iter()
                .map(|(policy_id, revision, response)| ReportedAnswer { policy_id, revision, response })
                .collect();
            match store.record_report(host, &answers, None, now, &AutomationRules::default(), webhook_job).await {
                Ok(_) | Err(StoreError::HostGone) => {}
                Err(err) => panic!("report of host {host}: {err}"),
            }
        }
        Task::EditQuery { policy, name, query, script } | Task::EditScript { policy, name, query, script } => {
            match store.update_policy(policy, &fields(&name, &query, script), now).await {
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(err) => panic!("editing policy {policy}: {err}"),
            }
        }
        Task::DeletePolicies { policies } => {
            store.delete_policies(&policies).await.unwrap();
        }
        Task::Prune => {
            store.prune_voided_answers(7).await.unwrap();
        }
        Task::FlushSeen { hosts } => {
            let seen: Vec<(i64, i64)> = hosts.iter().map(|h| (*h, now)).collect();
            store.flush_seen_times(&seen).await.unwrap();
        }
        Task::DeleteHost { host } => {
            store.delete_host(host, now).await.unwrap();
        }
        Task::Reenroll { name, key } => {
            // Into the host's row, or a new one if a deletion won: either way it succeeds.
            store.enroll_host(&enrollment(&name, &key, None), now).await.unwrap();
        }
        Task::Transfer { hosts, team } => match store.transfer_hosts(team, &hosts, now).await {
            Ok(_) | Err(StoreError::NotFound("team")) => {}
            Err(err) => panic!("transfer of {hosts:?} to {team:?}: {err}"),
        },
        Task::DeleteTeam { team } => {
            store.delete_team(team, now).await.unwrap();
        }
        Task::ResetAutomations { policies } => {
            store.reset_automations(&policies, now).await.unwrap();
        }
    }
}

async fn counts_equal_a_recount_under_concurrent_change(store: Store) {
    let clock = Arc::new(AtomicI64::new(NOW));
    let mut rng = Lcg(17);
    let script = store.create_script(None, "fix.sh", "echo fix", NOW).await.unwrap();
    let mut teams = Vec::new();
    for t in 0..3 {
        teams.push(store.create_team(&format!("team-{t}"), "", &[], NOW).await.unwrap());
    }
    // Host ids, and the uuid each enrolled with (in step).
    let (mut hosts, mut names) = (Vec::new(), Vec::new());
    for h in 0..HOSTS {
        let team = if h % 4 == 3 { None } else { Some(teams[h % teams.len()]) };
        names.push(format!("host-{h}"));
        hosts.push(enroll(&store, &names[h], team).await);
    }
    // (id, name, query, revision as this test last knew it)
    let mut policies: Vec<(i64, String, String, i64)> = Vec::new();
    let mut generation = 0;
    let create_policies = |store: Store, teams: Vec<i64>, generation: usize| async move {
        let mut created = Vec::new();
        for p in 0..5 {
            let name = format!("policy-{generation}-{p}");
            let query = format!("SELECT {p};");
            let team = if p >= 3 { Some(teams[p % teams.len()]) } else { None };
            let script = (p == 1 || p == 2).then_some(script);
            let mut fields = fields(&name, &query, script);
            if p == 2 {
                // A deferrable automation: its runs open deferral rows (which reference the policy).
                fields.deferral = Some(r#"{"enabled": true}"#.into());
            }
            let id = store.create_policy(&fields, team, None, NOW).await.unwrap();
            created.push((id, name, query, 1));
        }
        created
    };
    policies.extend(create_policies(store.clone(), teams.clone(), generation).await);

    for round in 0..ROUNDS {
        let mut tasks = Vec::new();
        for &host in &hosts {
            for _ in 0..REPORTS_PER_HOST {
                let mut answers = Vec::new();
                for (id, _, _, revision) in &policies {
                    let response = [PolicyResponse::Pass, PolicyResponse::Fail, PolicyResponse::NoAnswer][rng.below(3)];
                    // Mostly the revision handed out; sometimes an older one, sometimes unnamed.
                    let revision = match rng.below(10) {
                        0 => None,
                        1 => Some((*revision - 1).max(1)),
                        _ => Some(*revision),
                    };
                    answers.push((*id, revision, response));
                }
                tasks.push(Task::Report { host, answers });
            }
        }
        for _ in 0..3 {
            let (id, name, _, _) = policies[rng.below(policies.len())].clone();
            let query = format!("SELECT {round}, {};", rng.below(1000));
            tasks.push(Task::EditQuery { policy: id, name, query, script: Some(script) });
        }
        {
            let (id, name, query, _) = policies[rng.below(policies.len())].clone();
            let script = if rng.below(2) == 0 { Some(script) } else { None };
            tasks.push(Task::EditScript { policy: id, name, query, script });
        }
        tasks.push(Task::ResetAutomations { policies: policies.iter().map(|p| p.0).collect() });
        for _ in 0..6 {
            let host = hosts[rng.below(hosts.len())];
            // Two transfers of one host at once, to different teams.
            for _ in 0..2 {
                let team = if rng.below(4) == 0 { None } else { Some(teams[rng.below(teams.len())]) };
                tasks.push(Task::Transfer { hosts: vec![host], team });
            }
        }
        let batch: Vec<i64> = (0..6).map(|_| hosts[rng.below(hosts.len())]).collect();
        tasks.push(Task::Transfer { hosts: batch, team: Some(teams[rng.below(teams.len())]) });
        let doomed_hosts: Vec<i64> = (0..2).map(|_| hosts[rng.below(hosts.len())]).collect();
        for &host in &doomed_hosts {
            tasks.push(Task::DeleteHost { host });
            // The same host enrolling again at that moment (the insert finds the row, the update may not).
            let name = names[hosts.iter().position(|h| *h == host).unwrap()].clone();
            tasks.push(Task::Reenroll { key: format!("key-{round}-doomed-{name}"), name });
        }
        for _ in 0..3 {
            let name = names[rng.below(names.len())].clone();
            tasks.push(Task::Reenroll { key: format!("key-{round}-{name}"), name });
        }
        let doomed_team = teams[rng.below(teams.len())];
        tasks.push(Task::DeleteTeam { team: doomed_team });
        if round % 2 == 1 {
            let doomed: Vec<i64> = (0..2).map(|_| policies[rng.below(policies.len())].0).collect();
            tasks.push(Task::DeletePolicies { policies: doomed });
        }
        for _ in 0..3 {
            tasks.push(Task::Prune);
        }
        for _ in 0..2 {
            let mut seen: Vec<i64> = (0..8).map(|_| hosts[rng.below(hosts.len())]).collect();
            seen.reverse();
            tasks.push(Task::FlushSeen { hosts: seen });
        }
        // Shuffle, then start every task at once.
        for i in (1..tasks.len()).rev() {
            tasks.swap(i, rng.below(i + 1));
        }
        let barrier = Arc::new(Barrier::new(tasks.len()));
        let handles: Vec<_> = tasks
            .into_iter()
            .map(|task| {
                let (store, barrier, clock) = (store.clone(), barrier.clone(), clock.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    run(store, task, clock).await;
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }

        let stored = store.stored_policy_counts().await.unwrap();
        let recount = store.recount_policy_answers().await.unwrap();
        assert_eq!(stored, recount, "round {round}: counts drifted from a recount");
        assert!(!recount.is_empty(), "round {round}: the round recorded answers");

        // Every host is in a team that exists (or none); answers to team policies only where they apply.
        let live_teams: Vec<i64> = store.list_teams().await.unwrap().iter().map(|t| t.id).collect();
        for &host in &hosts {
            if let Some(record) = store.get_host(host).await.unwrap() {
                assert!(
                    record.team_id.is_none_or(|t| live_teams.contains(&t)),
                    "round {round}: host {host} is under deleted team {:?}",
                    record.team_id
                );
            }
        }

        // Replace what went: hosts, the team, the policy; learn the revisions.
        let kept: Vec<bool> = hosts.iter().map(|h| !doomed_hosts.contains(h)).collect();
        let mut keep = kept.iter();
        names.retain(|_| *keep.next().unwrap());
        hosts.retain(|h| !doomed_hosts.contains(h));
        while hosts.len() < HOSTS {
            generation += 1;
            names.push(format!("host-new-{generation}"));
            hosts.push(enroll(&store, names.last().unwrap(), None).await);
        }
        teams.retain(|t| *t != doomed_team);
        generation += 1;
        teams.push(store.create_team(&format!("team-new-{generation}"), "", &[], NOW).await.unwrap());
        let mut known = Vec::new();
        for (id, _, _, _) in &policies {
            if let Some(p) = store.get_policy(*id).await.unwrap() {
                known.push((p.id, p.name, p.query, p.revision));
            }
        }
        policies = known;
        if policies.len() < 5 {
            generation += 1;
            policies.extend(create_policies(store.clone(), teams.clone(), generation).await);
        }
    }
}

/// A burst of enrollments and reports at once (on SQLite they share group commits): every write gets its own
/// answer — a report for a deleted host fails alone, the writes beside it stand (the batch holding it is
/// applied again write by write) — a host reporting twice at once is counted once, and everything
/// acknowledged is there afterwards.
async fn a_burst_of_writes_is_each_acknowledged_alone(store: Store) {
    let policy = store.create_policy(&fields("burst", "SELECT 1;", None), None, None, NOW).await.unwrap();
    let doomed = enroll(&store, "doomed", None).await;
    assert!(store.delete_host(doomed, NOW).await.unwrap());
    let barrier = Arc::new(Barrier::new(400));
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                if i % 4 == 3 {
                    // A report of a host deleted before: refused alone.
                    let answers =
                        [ReportedAnswer { policy_id: policy, revision: Some(1), response: PolicyResponse::Pass }];
                    let rules = AutomationRules::default();
                    let refused = store.record_report(doomed, &answers, None, NOW, &rules, webhook_job).await;
                    assert!(matches!(refused, Err(StoreError::HostGone)), "task {i}");
                    return None;
                }
                let host = enroll(&store, &format!("burst-{i}"), None).await;
                let response = if i % 2 == 0 { PolicyResponse::Pass } else { PolicyResponse::Fail };
                let answers = [ReportedAnswer { policy_id: policy, revision: Some(1), response }];
                let rules = AutomationRules::default();
                let report = || store.record_report(host, &answers, None, NOW + 1, &rules, webhook_job);
                if i % 4 == 1 {
                    // The same report twice at once (perhaps in one batch): the second sees the first's
                    // answer and moves no count.
                    let (first, second) = tokio::join!(report(), report());
                    first.unwrap();
                    second.unwrap();
                } else {
                    report().await.unwrap();
                }
                Some(response)
            })
        })
        .collect();
    let mut expected = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Some(PolicyResponse::Pass) => expected.0 += 1,
            Some(_) => expected.1 += 1,
            None => {}
        }
    }
    assert_eq!(store.host_count().await.unwrap(), 300);
    let counted = store.get_policy(policy).await.unwrap().unwrap();
    assert_eq!((counted.passing_host_count, counted.failing_host_count), expected);
    assert_eq!(store.stored_policy_counts().await.unwrap(), store.recount_policy_answers().await.unwrap());
    // Each new failure enqueued its webhook job in its report's transaction.
    assert_eq!(
        store.list_jobs(herd_core::jobs::JobKind::FailingPolicyWebhook, None, 1000).await.unwrap().len() as i64,
        expected.1
    );
}
