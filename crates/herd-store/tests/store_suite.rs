//! The behavioural suite of the Store: every case runs against SQLite and against PostgreSQL, so the two
//! backends cannot drift apart. PostgreSQL cases need `HERD_TEST_DATABASE_URL` (scripts/test sets it).

#[macro_use]
mod common;

use herd_core::jobs::{JobKind, JobPayload};
use herd_core::roles::Role;
use herd_core::vitals::VitalsPatch;
use herd_core::{DAY_MS, HOUR_MS};
use herd_store::{
    EndSessions, EnrollHost, HostFilter, HostOrder, NewUser, StatusCondition, Store, StoreError, StoredStatusLog,
};
use herd_store::{JobState, NewJob};

const NOW: i64 = 1_750_000_000_000;

store_cases!(
    enroll_and_reenroll_keep_one_row,
    a_report_of_vitals_and_answers_writes_both,
    vitals_fill_columns_and_clear_only_older_refetch,
    listing_filters_order_and_paginate,
    search_treats_sql_and_wildcards_as_text,
    status_filters_follow_seen_time_and_intervals,
    delete_and_transfer_feed_the_change_log,
    teams_secrets_and_team_deletion,
    users_roles_and_sessions,
    password_changes_end_other_sessions,
    the_last_admin_survives_concurrent_deletes_and_demotions,
    config_document_initialises_once,
    status_logs_keep_the_newest,
    seen_times_never_move_backwards,
    jobs_enqueue_once_lease_retry_and_give_up,
    jobs_given_up_fail_at_once_whatever_attempts_remain,
    jobs_are_claimed_once_by_concurrent_claimers,
    failing_policy_automation_runs_once_then_retries_then_gives_up,
    refused_runs_are_no_attempts_and_enabling_scripts_resumes_at_once,
    an_unreadable_deferral_document_defers_nothing,
    concurrent_failing_reports_give_up_once,
    automations_reset_makes_a_failing_host_new_again,
    continuous_automations_fire_on_every_scheduled_failure,
    finished_remediations_make_their_policies_due_again,
    automation_rules_set_retries_and_timeout,
    deferrable_runs_wait_on_the_user_and_end_when_the_policy_passes,
    profiles_reconcile_answer_verify_and_follow_team_moves,
);

fn enroll(uuid: &str, key: &str) -> EnrollHost {
    EnrollHost {
        uuid: uuid.into(),
        osquery_host_id: format!("ident-{uuid}"),
        node_key_hash: key.into(),
        team_id: None,
        platform_hint: "linux".into(),
        details: VitalsPatch { hostname: Some(format!("host-{uuid}")), ..Default::default() },
    }
}

async fn enroll_and_reenroll_keep_one_row(store: Store) {
    let enrolled = store.enroll_host(&enroll("U1", "k1"), NOW).await.unwrap();
    assert!(enrolled.new_host);
    let id = enrolled.checkin.id;
    let checkin = store.host_checkin_by_node_key("k1").await.unwrap().unwrap();
    assert_eq!(enrolled.checkin, checkin, "enrolling returns the row as stored (servers cache it)");
    assert_eq!(checkin.platform, "linux");
    assert_eq!(checkin.detail_updated_at, None);
    // Nobody can have cached a new host: it is not in the change feed (which would make every server
    // evict it and read it back).
    assert!(store.changed_hosts_since(NOW).await.unwrap().is_empty());

    assert!(store.request_refetch(id, NOW + 10).await.unwrap());
    let again = store.enroll_host(&enroll("U1", "k2"), NOW + 1000).await.unwrap();
    assert!(!again.new_host);
    assert_eq!(again.checkin, store.host_checkin_by_node_key("k2").await.unwrap().unwrap());
    assert!(again.checkin.refetch_requested_at.is_some(), "re-enrolling keeps the row's state");
    let again = again.checkin.id;
    assert_eq!(again, id, "same uuid, same row");
    assert!(store.host_checkin_by_node_key("k1").await.unwrap().is_none(), "old node key stops working");
    assert_eq!(store.host_checkin_by_node_key("k2").await.unwrap().unwrap().id, id);
    let host = store.get_host(id).await.unwrap().unwrap();
    assert_eq!(host.last_enrolled_at, NOW + 1000);
    assert_eq!(host.created_at, NOW);
    assert_eq!(host.hostname, "host-U1");
    assert_eq!(store.host_count().await.unwrap(), 1);
    let changes = store.changed_hosts_since(NOW + 1000).await.unwrap();
    assert!(changes.iter().any(|c| c.host_id == id), "re-enroll must invalidate cached node keys");
    // A second change of the host in the same millisecond is a change of its own (servers tell changes
    // apart by seq: one that commits after a poll saw the first must still evict).
    assert!(store.request_refetch(id, NOW + 1000).await.unwrap());
    let changes = store.changed_hosts_since(NOW + 1000).await.unwrap();
    let same_ms: Vec<_> = changes.iter().filter(|c| c.host_id == id && c.changed_at == NOW + 1000).collect();
    assert_eq!(same_ms.len(), 2, "{changes:?}");
    assert_ne!(same_ms[0].seq, same_ms[1].seq);
}

/// A report carrying vitals and answers writes the host row once (vitals with run history): both land, and
/// the host's first report (no stored answers to read) and its second (answers read back) count exactly.
async fn a_report_of_vitals_and_answers_writes_both(store: Store) {
    use herd_core::policy::PolicyResponse;
    use herd_store::{AutomationRules, PolicyFields, ReportedAnswer};
    let host = store.enroll_host(&enroll("U1", "k1"), NOW).await.unwrap().checkin.id;
    let policy = store.create_policy(&PolicyFields::new("p", "SELECT 1;"), None, None, NOW).await.unwrap();
    let patch = VitalsPatch { os_version: Some("Ubuntu 24.4".into()), memory: Some(1 << 33), ..Default::default() };
    for (at, response) in [(NOW + 10, PolicyResponse::Fail), (NOW + 20, PolicyResponse::Pass)] {
        let answers = [ReportedAnswer { policy_id: policy, revision: Some(1), response }];
        let rules = AutomationRules::default();
        store.record_report(host, &answers, Some((&patch, at - 5)), at, &rules, |_| Vec::new()).await.unwrap();
        let record = store.get_host(host).await.unwrap().unwrap();
        assert_eq!((record.os_version.as_str(), record.memory), ("Ubuntu 24.4", Some(1 << 33)));
        assert_eq!((record.detail_updated_at, record.policy_updated_at), (Some(at), Some(at)));
        let (_, runs) = store.host_checkin_and_runs(host).await.unwrap().unwrap();
        assert_eq!(runs[&policy].ran_at, at);
        assert_eq!(store.stored_policy_counts().await.unwrap(), store.recount_policy_answers().await.unwrap());
    }
    assert_eq!(store.recount_policy_answers().await.unwrap()[&(policy, 0)], (1, 0), "one host, passing");
}

async fn vitals_fill_columns_and_clear_only_older_refetch(store: Store) {
    let id = store.enroll_host(&enroll("U1", "k1"), NOW).await.unwrap().checkin.id;
    assert!(store.request_refetch(id, NOW + 10).await.unwrap());
    let patch = VitalsPatch {
        os_version: Some("Ubuntu 22.4".into()),
        platform: Some("ubuntu".into()),
        memory: Some(1 << 34),
        percent_disk_space_available: Some(41.5),
        distributed_interval: Some(10),
        ..Default::default()
    };
    // Results of queries handed out before the refetch request: the request stays.
    assert!(store.record_vitals(id, &patch, NOW + 5, NOW + 20).await.unwrap());
    let host = store.get_host(id).await.unwrap().unwrap();
    assert_eq!(host.refetch_requested_at, Some(NOW + 10));
    assert_eq!(host.os_version, "Ubuntu 22.4");
    assert_eq!(host.platform, "ubuntu");
    assert_eq!(host.memory, Some(1 << 34));
    assert_eq!(host.percent_disk_space_available, Some(41.5));
    assert_eq!(host.detail_updated_at, Some(NOW + 20));
    assert_eq!(host.hostname, "host-U1", "columns the patch does not carry are kept");
    // Results of queries handed out after it: cleared.
    assert!(store.record_vitals(id, &VitalsPatch::default(), NOW + 30, NOW + 40).await.unwrap());
    assert_eq!(store.get_host(id).await.unwrap().unwrap().refetch_requested_at, None);
    assert!(!store.record_vitals(9999, &patch, NOW, NOW).await.unwrap(), "unknown host");
    // Unknown floats then known ones, on every pooled connection: the statement must accept both.
    for i in 0..40 {
        let patch = if i % 2 == 0 { VitalsPatch::default() } else { patch.clone() };
        assert!(store.record_vitals(id, &patch, NOW, NOW + 50).await.unwrap());
    }
    assert_eq!(store.get_host(id).await.unwrap().unwrap().percent_disk_space_available, Some(41.5));
    assert!(!store.request_refetch(9999, NOW).await.unwrap());
}

async fn listing_filters_order_and_paginate(store: Store) {
    let team = store.create_team("Servers", "", &[], NOW).await.unwrap();
    let mut ids = Vec::new();
    for (i, name) in ["charlie", "alpha", "bravo"].iter().enumerate() {
        let mut host = enroll(&format!("U{i}"), &format!("k{i}"));
        host.details.hostname = Some(name.to_string());
        host.team_id = (i == 0).then_some(team);
        ids.push(store.enroll_host(&host, NOW).await.unwrap().checkin.id);
    }
    let all = HostFilter::default();
    let names = |hosts: Vec<herd_store::HostRecord>| hosts.into_iter().map(|h| h.hostname).collect::<Vec<_>>();
    let by_name = store.list_hosts(&all, HostOrder::Hostname, false, 0, 10, NOW).await.unwrap();
    assert_eq!(names(by_name), ["alpha", "bravo", "charlie"]);
    let desc = store.list_hosts(&all, HostOrder::Hostname, true, 1, 1, NOW).await.unwrap();
    assert_eq!(names(desc), ["bravo"]);
    let in_team = HostFilter { team: Some(Some(team)), ..Default::default() };
    let team_hosts = store.list_hosts(&in_team, HostOrder::Id, false, 0, 10, NOW).await.unwrap();
    assert_eq!(names(team_hosts.clone()), ["charlie"]);
    assert_eq!(team_hosts[0].team_name.as_deref(), Some("Servers"));
    let no_team = HostFilter { team: Some(None), ..Default::default() };
    assert_eq!(store.count_hosts(&no_team, NOW).await.unwrap(), 2);
    let visible = HostFilter { visible_teams: Some(vec![team]), ..Default::default() };
    assert_eq!(store.count_hosts(&visible, NOW).await.unwrap(), 1);
    let nothing_visible = HostFilter { visible_teams: Some(vec![]), ..Default::default() };
    assert_eq!(store.count_hosts(&nothing_visible, NOW).await.unwrap(), 0);
    let some_ids = HostFilter { ids: Some(vec![ids[1], ids[2]]), ..Default::default() };
    assert_eq!(store.count_hosts(&some_ids, NOW).await.unwrap(), 2);
    assert_eq!(store.host_by_identifier("alpha").await.unwrap().unwrap().id, ids[1]);
    assert_eq!(store.host_by_identifier("U2").await.unwrap().unwrap().id, ids[2]);
    assert!(store.host_by_identifier("nobody").await.unwrap().is_none());
}

async fn search_treats_sql_and_wildcards_as_text(store: Store) {
    let mut odd = enroll("U-odd", "k1");
    odd.details.hostname = Some("web_1'; DROP TABLE hosts; --".into());
    store.enroll_host(&odd, NOW).await.unwrap();
    let mut plain = enroll("U-plain", "k2");
    plain.details.hostname = Some("webx1".into());
    store.enroll_host(&plain, NOW).await.unwrap();
    let search = |q: &str| HostFilter { query: Some(q.into()), ..Default::default() };
    assert_eq!(store.count_hosts(&search("WEB"), NOW).await.unwrap(), 2, "case-insensitive");
    assert_eq!(store.count_hosts(&search("web_"), NOW).await.unwrap(), 1, "_ is not a wildcard");
    assert_eq!(store.count_hosts(&search("%"), NOW).await.unwrap(), 0, "% is not a wildcard");
    assert_eq!(store.count_hosts(&search("'; DROP TABLE hosts; --"), NOW).await.unwrap(), 1);
    assert_eq!(store.host_count().await.unwrap(), 2, "the table survives");
}

async fn status_filters_follow_seen_time_and_intervals(store: Store) {
    let fresh = store.enroll_host(&enroll("fresh", "k1"), NOW - HOUR_MS).await.unwrap().checkin.id;
    let slow = store.enroll_host(&enroll("slow", "k2"), NOW - 2 * DAY_MS).await.unwrap().checkin.id;
    let gone = store.enroll_host(&enroll("gone", "k3"), NOW - 60 * DAY_MS).await.unwrap().checkin.id;
    let never = store.enroll_host(&enroll("never", "k4"), NOW - 3 * DAY_MS).await.unwrap().checkin.id;
    // `slow` checks in every 10 minutes: 9 minutes of silence is still online for it.
    let flags = VitalsPatch { distributed_interval: Some(600), ..Default::default() };
    store.record_vitals(slow, &flags, NOW, NOW).await.unwrap();
    store
        .flush_seen_times(&[(fresh, NOW - 30_000), (slow, NOW - 9 * 60_000), (gone, NOW - 40 * DAY_MS)])
        .await
        .unwrap();
    let ids_with = |status| {
        let store = store.clone();
        async move {
            let filter = HostFilter { status: Some(status), ..Default::default() };
            let mut ids: Vec<i64> = store
                .list_hosts(&filter, HostOrder::Id, false, 0, 100, NOW)
                .await
                .unwrap()
                .iter()
                .map(|h| h.id)
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(ids_with(StatusCondition::Online).await, vec![fresh, slow]);
    assert_eq!(ids_with(StatusCondition::Offline).await, vec![never]);
    assert_eq!(ids_with(StatusCondition::Missing).await, vec![gone]);
    assert_eq!(ids_with(StatusCondition::New).await, vec![fresh]);
    // The dashboard's one-pass counts agree with the filters.
    assert_eq!(store.host_status_counts(&HostFilter::default(), NOW).await.unwrap(), (4, 2, 1));
}

async fn delete_and_transfer_feed_the_change_log(store: Store) {
    let team = store.create_team("Laptops", "", &[], NOW).await.unwrap();
    let a = store.enroll_host(&enroll("a", "ka"), NOW).await.unwrap().checkin.id;
    let b = store.enroll_host(&enroll("b", "kb"), NOW).await.unwrap().checkin.id;
    let later = NOW + 10_000;
    assert_eq!(store.transfer_hosts(Some(team), &[a, b, 777], later).await.unwrap(), 2);
    assert_eq!(store.get_host(a).await.unwrap().unwrap().team_id, Some(team));
    assert!(matches!(store.transfer_hosts(Some(9999), &[a], later).await, Err(StoreError::NotFound("team"))));
    assert!(store.delete_host(a, later + 1).await.unwrap());
    assert!(!store.delete_host(a, later + 1).await.unwrap());
    assert!(store.host_checkin_by_node_key("ka").await.unwrap().is_none());
    let changed: Vec<i64> = store.changed_hosts_since(later).await.unwrap().into_iter().map(|c| c.host_id).collect();
    assert_eq!(changed, vec![a, b, a]);
    assert_eq!(store.transfer_hosts(None, &[b], later + 2).await.unwrap(), 1);
    assert_eq!(store.get_host(b).await.unwrap().unwrap().team_id, None);
    assert!(store.prune_host_changes(later + 2).await.unwrap() >= 3);
    assert_eq!(
        store.changed_hosts_since(0).await.unwrap().iter().map(|c| (c.host_id, c.changed_at)).collect::<Vec<_>>(),
        vec![(b, later + 2)]
    );
}

async fn teams_secrets_and_team_deletion(store: Store) {
    let team = store.create_team("Servers", "rack A", &["team-secret-1".into()], NOW).await.unwrap();
    assert!(matches!(store.create_team("Servers", "", &[], NOW).await, Err(StoreError::Conflict(_))));
    assert!(matches!(
        store.create_team("Other", "", &["team-secret-1".into()], NOW).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.list_teams().await.unwrap().len(), 1, "a failed create leaves nothing behind");
    assert!(store.init_app_config(&serde_json::json!({}), "global-secret", NOW).await.unwrap());
    assert!(!store.init_app_config(&serde_json::json!({}), "another-one", NOW).await.unwrap(), "kept");
    let all = store.all_enroll_secrets().await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().any(|s| s.secret == "team-secret-1" && s.team_id == Some(team)));
    store.replace_enroll_secrets(Some(team), &["team-secret-2".into(), "team-secret-3".into()], NOW).await.unwrap();
    let secrets: Vec<String> = store.enroll_secrets(Some(team)).await.unwrap().into_iter().map(|s| s.secret).collect();
    assert_eq!(secrets, ["team-secret-2", "team-secret-3"]);
    assert!(matches!(store.replace_enroll_secrets(Some(404), &[], NOW).await, Err(StoreError::NotFound(_))));

    let options = serde_json::json!({"config": {"options": {"distributed_interval": 30}}});
    store.update_team(team, "Servers", "rack B", Some(&options), None, NOW).await.unwrap();
    let mut host = enroll("h", "kh");
    host.team_id = Some(team);
    let host_id = store.enroll_host(&host, NOW).await.unwrap().checkin.id;
    let record = store.get_team(team).await.unwrap().unwrap();
    assert_eq!((record.description.as_str(), record.host_count), ("rack B", 1));
    assert_eq!(record.agent_options, Some(options.clone()));
    assert_eq!(store.team_agent_options().await.unwrap(), vec![(team, options)]);

    assert_eq!(store.delete_team(team, NOW + 5).await.unwrap(), Some(vec![host_id]));
    assert_eq!(store.delete_team(team, NOW + 5).await.unwrap(), None);
    assert_eq!(store.get_host(host_id).await.unwrap().unwrap().team_id, None, "hosts stay, teamless");
    assert!(store.all_enroll_secrets().await.unwrap().iter().all(|s| s.team_id.is_none()));
    assert!(store.changed_hosts_since(NOW + 5).await.unwrap().iter().any(|c| c.host_id == host_id));
    assert!(store.get_team(team).await.unwrap().is_none());
}

async fn users_roles_and_sessions(store: Store) {
    let team = store.create_team("T", "", &[], NOW).await.unwrap();
    let new_user = NewUser {
        name: "Ada".into(),
        email: "Ada@Example.com".into(),
        password_hash: "hash".into(),
        global_role: None,
        team_roles: vec![(team, Role::Maintainer)],
        api_only: true,
        force_password_reset: false,
    };
    let id = store.create_user(&new_user, NOW).await.unwrap();
    assert!(matches!(store.create_user(&new_user, NOW).await, Err(StoreError::Conflict(_))));
    let bad_team = NewUser { email: "x@y.z".into(), team_roles: vec![(404, Role::Observer)], ..new_user.clone() };
    assert!(matches!(store.create_user(&bad_team, NOW).await, Err(StoreError::NotFound("team"))));
    assert!(store.user_by_email("x@y.z").await.unwrap().is_none(), "a failed create leaves nothing behind");

    let mut user = store.user_by_email("ada@example.com").await.unwrap().unwrap();
    assert_eq!(user.id, id);
    assert_eq!(user.email, "ada@example.com");
    assert_eq!(user.team_roles, vec![(team, "T".to_string(), Role::Maintainer)]);
    assert!(user.api_only);
    assert_eq!(user.actor().role_in(herd_core::roles::Scope::Team(team)), Some(Role::Maintainer));

    user.global_role = Some(Role::Observer);
    user.team_roles.clear();
    store.update_user(&user, NOW + 1).await.unwrap();
    let user = store.get_user(id).await.unwrap().unwrap();
    assert_eq!((user.global_role, user.team_roles.len()), (Some(Role::Observer), 0));
    assert_eq!(store.list_users(None).await.unwrap().len(), 1);
    assert_eq!(store.list_users(Some(team)).await.unwrap().len(), 0);

    store.create_session("live", id, Some(NOW + 1000), NOW).await.unwrap();
    store.create_session("forever", id, None, NOW).await.unwrap();
    store.create_session("expired", id, Some(NOW - 1), NOW).await.unwrap();
    assert_eq!(store.session_user("live", NOW).await.unwrap().unwrap().user.id, id);
    assert!(store.session_user("forever", NOW + 100 * DAY_MS).await.unwrap().is_some());
    assert!(store.session_user("expired", NOW).await.unwrap().is_none());
    assert!(store.session_user("unknown", NOW).await.unwrap().is_none());
    assert_eq!(store.prune_expired_sessions(NOW).await.unwrap(), 1);
    store.delete_session("live").await.unwrap();
    assert!(store.session_user("live", NOW).await.unwrap().is_none());
    assert!(store.delete_user(id).await.unwrap());
    assert!(store.session_user("forever", NOW).await.unwrap().is_none(), "sessions die with their user");
}

async fn password_changes_end_other_sessions(store: Store) {
    let new_user = |email: &str| NewUser {
        name: email.into(),
        email: email.into(),
        password_hash: "old-hash".into(),
        global_role: Some(Role::Observer),
        team_roles: vec![],
        api_only: false,
        force_password_reset: false,
    };
    let ada = store.create_user(&new_user("ada@example.com"), NOW).await.unwrap();
    let bob = store.create_user(&new_user("bob@example.com"), NOW).await.unwrap();
    for (token, user) in [("ada-laptop", ada), ("ada-phone", ada), ("ada-script", ada), ("bob", bob)] {
        store.create_session(token, user, None, NOW).await.unwrap();
    }
    // Ada changes her password from her laptop: that session lives on, her others end, Bob's are untouched.
    let mut user = store.get_user(ada).await.unwrap().unwrap();
    user.password_hash = "new-hash".into();
    store.update_user_ending_sessions(&user, EndSessions::AllBut("ada-laptop"), NOW + 1).await.unwrap();
    assert_eq!(store.get_user(ada).await.unwrap().unwrap().password_hash, "new-hash");
    assert!(store.session_user("ada-laptop", NOW).await.unwrap().is_some());
    assert!(store.session_user("ada-phone", NOW).await.unwrap().is_none());
    assert!(store.session_user("ada-script", NOW).await.unwrap().is_none());
    assert!(store.session_user("bob", NOW).await.unwrap().is_some());
    // An admin resets it: every session ends.
    user.force_password_reset = true;
    store.update_user_ending_sessions(&user, EndSessions::All, NOW + 2).await.unwrap();
    assert!(store.session_user("ada-laptop", NOW).await.unwrap().is_none());
    assert!(store.session_user("bob", NOW).await.unwrap().is_some());
    // A refused change (email taken) ends nothing.
    store.create_session("ada-again", ada, None, NOW).await.unwrap();
    user.email = "bob@example.com".into();
    let taken = store.update_user_ending_sessions(&user, EndSessions::All, NOW + 3).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert!(store.session_user("ada-again", NOW).await.unwrap().is_some());
}

/// "At least one global admin" holds however many deletes and demotions run at the same moment: each round
/// has several admins, every one of them removed at once (half deleted, half demoted); exactly one removal is
/// refused. Then the two-admins case: each deleting the other.
async fn the_last_admin_survives_concurrent_deletes_and_demotions(store: Store) {
    let admin = |email: String| NewUser {
        name: email.clone(),
        email,
        password_hash: "x".into(),
        global_role: Some(Role::Admin),
        team_roles: vec![],
        api_only: false,
        force_password_reset: false,
    };
    let admins_left = |store: Store| async move {
        store.list_users(None).await.unwrap().iter().filter(|u| u.global_role == Some(Role::Admin)).count()
    };
    for round in 0..6 {
        let size = if round % 2 == 0 { 2 } else { 8 };
        let mut ids = Vec::new();
        for i in 0..size {
            ids.push(store.create_user(&admin(format!("admin-{round}-{i}@example.com")), NOW).await.unwrap());
        }
        // The survivors of the previous round step down first (not concurrently), leaving exactly `size` admins.
        for user in store.list_users(None).await.unwrap() {
            if user.global_role == Some(Role::Admin) && !ids.contains(&user.id) {
                store.delete_user(user.id).await.unwrap();
            }
        }
        assert_eq!(admins_left(store.clone()).await, size);
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(size));
        let removals: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                let (store, start) = (store.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    if i % 2 == 0 {
                        store.delete_user(id).await.map(|_| ())
                    } else {
                        let mut user = store.get_user(id).await.unwrap().unwrap();
                        user.global_role = Some(Role::Observer);
                        store.update_user(&user, NOW + 1).await
                    }
                })
            })
            .collect();
        let mut refused = 0;
        for removal in removals {
            match removal.await.unwrap() {
                Ok(()) => {}
                Err(StoreError::Conflict(reason)) => {
                    assert!(reason.contains("last global admin"), "{reason}");
                    refused += 1;
                }
                Err(other) => panic!("round {round}: {other}"),
            }
        }
        assert_eq!(admins_left(store.clone()).await, 1, "round {round}: exactly one admin remains");
        assert_eq!(refused, 1, "round {round}: exactly the last removal is refused");
    }
}

async fn config_document_initialises_once(store: Store) {
    assert_eq!(store.app_config().await.unwrap(), None);
    let first = serde_json::json!({"org_info": {"org_name": "Acme"}});
    assert!(store.init_app_config(&first, "secret-one", NOW).await.unwrap());
    assert!(!store.init_app_config(&serde_json::json!({}), "secret-two", NOW).await.unwrap());
    assert_eq!(store.app_config().await.unwrap(), Some(first));
    let secrets: Vec<String> = store.enroll_secrets(None).await.unwrap().into_iter().map(|s| s.secret).collect();
    assert_eq!(secrets, ["secret-one"], "the first start's secret, committed with the configuration");
    let second = serde_json::json!({"org_info": {"org_name": "Acme 2"}});
    store.save_app_config(&second, NOW).await.unwrap();
    assert_eq!(store.app_config().await.unwrap(), Some(second));
}

async fn status_logs_keep_the_newest(store: Store) {
    let host = store.enroll_host(&enroll("h", "k"), NOW).await.unwrap().checkin.id;
    let line = |n: i64| StoredStatusLog {
        received_at: NOW + n,
        unix_time: Some(n),
        severity: n % 4,
        filename: "x.cpp".into(),
        line: n,
        message: format!("message {n}"),
        version: "5.12.1".into(),
    };
    let batch: Vec<_> = (0..1005).map(line).collect();
    store.append_status_logs(host, &batch).await.unwrap();
    let kept = store.status_logs(host, 5000).await.unwrap();
    assert_eq!(kept.len(), herd_store::STATUS_LOGS_KEPT as usize);
    assert_eq!(kept[0], line(1004), "newest first");
    assert_eq!(kept.last().unwrap().line, 5, "oldest lines dropped");
    store.delete_host(host, NOW).await.unwrap();
    assert!(store.status_logs(host, 10).await.unwrap().is_empty());
}

async fn seen_times_never_move_backwards(store: Store) {
    let a = store.enroll_host(&enroll("a", "ka"), NOW).await.unwrap().checkin.id;
    let b = store.enroll_host(&enroll("b", "kb"), NOW).await.unwrap().checkin.id;
    let many: Vec<(i64, i64)> = (0..2500).map(|i| (a, NOW + i)).chain([(b, NOW + 5)]).collect();
    store.flush_seen_times(&many).await.unwrap();
    assert_eq!(store.get_host(a).await.unwrap().unwrap().seen_time, Some(NOW + 2499));
    store.flush_seen_times(&[(a, NOW), (b, NOW + 6), (4242, NOW)]).await.unwrap();
    assert_eq!(store.get_host(a).await.unwrap().unwrap().seen_time, Some(NOW + 2499));
    assert_eq!(store.get_host(b).await.unwrap().unwrap().seen_time, Some(NOW + 6));
}

/// A restart, or a second server on the same database: data stays and no migration runs twice.
async fn reopen_case(url: String) {
    let first = Store::open(&url).await.unwrap();
    let id = first.enroll_host(&enroll("a", "ka"), NOW).await.unwrap().checkin.id;
    let second = Store::open(&url).await.unwrap();
    assert_eq!(second.host_checkin_by_node_key("ka").await.unwrap().unwrap().id, id);
    first.close().await;
    second.close().await;
    let third = Store::open(&url).await.unwrap();
    assert_eq!(third.host_count().await.unwrap(), 1);
    third.close().await;
}

#[tokio::test]
async fn sqlite_reopen_keeps_data_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    reopen_case(format!("sqlite://{}", dir.path().join("herd.db").display())).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (HERD_TEST_DATABASE_URL): scripts/test runs it"]
async fn postgres_reopen_keeps_data_and_migrates_once() {
    reopen_case(herd_store::testing::fresh_postgres_url().await).await;
}

fn job(key: &str, max_attempts: i64, run_at: i64) -> NewJob {
    NewJob {
        idempotency_key: key.into(),
        payload: JobPayload::FailingPolicyWebhook {
            policy_id: 1,
            host_id: 1,
            failed_at: run_at,
            destination_url: "https://example.test/hook".into(),
        },
        max_attempts,
        run_at,
    }
}

async fn jobs_given_up_fail_at_once_whatever_attempts_remain(store: Store) {
    assert!(store.enqueue_job(&job("refused", 30, NOW), NOW).await.unwrap());
    let claimed = store.claim_jobs(&[JobKind::FailingPolicyWebhook], "server-1", 10, 30_000, NOW).await.unwrap();
    let id = claimed[0].id;
    assert!(!store.give_up_job(id, "server-2", "not mine", NOW + 1).await.unwrap(), "only the lease holder");
    assert!(store.give_up_job(id, "server-1", "refused: 127.0.0.1 is a loopback address", NOW + 2).await.unwrap());
    let failed = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(
        (failed.state, failed.attempts, failed.last_error.as_deref(), failed.finished_at),
        (JobState::Failed, 1, Some("refused: 127.0.0.1 is a loopback address"), Some(NOW + 2))
    );
    assert!(
        store
            .claim_jobs(&[JobKind::FailingPolicyWebhook], "server-1", 10, 30_000, NOW + 86_400_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.give_up_job(id, "server-1", "again", NOW + 3).await.unwrap(), "already finished");
}

async fn jobs_enqueue_once_lease_retry_and_give_up(store: Store) {
    assert!(store.enqueue_job(&job("a", 2, NOW), NOW).await.unwrap());
    assert!(!store.enqueue_job(&job("a", 2, NOW), NOW).await.unwrap(), "same key: enqueued once");
    assert!(store.enqueue_job(&job("later", 2, NOW + 60_000), NOW).await.unwrap());
    let claimed = store.claim_jobs(&[JobKind::FailingPolicyWebhook], "server-1", 10, 30_000, NOW).await.unwrap();
    assert_eq!(claimed.len(), 1, "only due jobs");
    let a = &claimed[0];
    assert_eq!((a.idempotency_key.as_str(), a.state, a.attempts), ("a", JobState::Running, 1));
    assert_eq!(a.payload.destination_url(), Some("https://example.test/hook"));
    assert!(
        store.claim_jobs(&[JobKind::FailingPolicyWebhook], "server-2", 10, 30_000, NOW + 1).await.unwrap().is_empty(),
        "leased"
    );
    assert!(store.claim_jobs(&[JobKind::MigrationWebhook], "server-2", 10, 30_000, NOW + 1).await.unwrap().is_empty());
    assert!(store.heartbeat_job(a.id, "server-1", 30_000, NOW + 20_000).await.unwrap());
    assert!(!store.heartbeat_job(a.id, "server-2", 30_000, NOW + 20_000).await.unwrap(), "not the owner");

    // First attempt fails: pending again, not before its retry time.
    let state = store.fail_job(a.id, "server-1", "connection refused", NOW + 25_000, NOW + 21_000).await.unwrap();
    assert_eq!(state, Some(JobState::Pending));
    assert!(
        store
            .claim_jobs(&[JobKind::FailingPolicyWebhook], "server-1", 10, 30_000, NOW + 24_000)
            .await
            .unwrap()
            .is_empty()
    );
    let retried =
        store.claim_jobs(&[JobKind::FailingPolicyWebhook], "server-2", 1, 30_000, NOW + 25_000).await.unwrap();
    assert_eq!((retried.len(), retried[0].attempts), (1, 2));
    assert_eq!(retried[0].last_error.as_deref(), Some("connection refused"));
    // Its worker dies on the last attempt: when the lease runs out the job is failed for good, not handed
    // out beyond max_attempts.
    let reclaimed =
        store.claim_jobs(&[JobKind::FailingPolicyWebhook], "server-3", 1, 30_000, NOW + 60_000).await.unwrap();
    assert_eq!(reclaimed.iter().map(|j| j.idempotency_key.as_str()).collect::<Vec<_>>(), ["later"]);
    assert_eq!(store.fail_job(a.id, "server-2", "late", NOW, NOW + 60_001).await.unwrap(), None, "lost the lease");
    let failed = store.get_job(a.id).await.unwrap().unwrap();
    assert_eq!(failed.state, JobState::Failed, "out of attempts");
    assert!(failed.last_error.as_deref().unwrap_or_default().contains("lease"), "{failed:?}");
    assert!(failed.finished_at.is_some());
    assert!(store.complete_job(reclaimed[0].id, "server-3", NOW + 60_500).await.unwrap());

    // A job whose lease runs out with attempts left is reclaimed by another server.
    assert!(store.enqueue_job(&job("b", 3, NOW), NOW).await.unwrap());
    let b = store
        .claim_jobs(&[JobKind::FailingPolicyWebhook], "server-1", 1, 30_000, NOW + 61_000)
        .await
        .unwrap()
        .remove(0);
    let retaken =
        store.claim_jobs(&[JobKind::FailingPolicyWebhook], "server-2", 1, 30_000, NOW + 91_001).await.unwrap();
    assert_eq!((retaken[0].id, retaken[0].attempts), (b.id, 2));
    assert!(!store.complete_job(b.id, "server-1", NOW + 91_002).await.unwrap(), "the first owner lost it");
    assert!(store.complete_job(b.id, "server-2", NOW + 91_003).await.unwrap());

    assert!(!store.complete_job(reclaimed[0].id, "server-3", NOW + 61_000).await.unwrap(), "once");
    assert_eq!(store.job_by_key("later").await.unwrap().unwrap().state, JobState::Done);
    assert_eq!(store.list_jobs(JobKind::FailingPolicyWebhook, Some(JobState::Done), 10).await.unwrap().len(), 2);
    assert_eq!(store.list_jobs(JobKind::FailingPolicyWebhook, None, 10).await.unwrap().len(), 3);
    assert_eq!(store.prune_finished_jobs(NOW + 100_000).await.unwrap(), 3);
}

async fn jobs_are_claimed_once_by_concurrent_claimers(store: Store) {
    for i in 0..40 {
        store.enqueue_job(&job(&format!("job-{i}"), 3, NOW), NOW).await.unwrap();
    }
    // Four claimers at once (on PostgreSQL, four connections racing through FOR UPDATE SKIP LOCKED).
    let claimers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store
                        .claim_jobs(&[JobKind::FailingPolicyWebhook], &format!("worker-{w}"), 3, 30_000, NOW)
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|j| j.id));
                }
            })
        })
        .collect();
    let mut results = Vec::new();
    for claimer in claimers {
        results.push(claimer.await.unwrap());
    }
    let mut all: Vec<i64> = results.into_iter().flatten().collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!((total, all.len()), (40, 40), "every job claimed exactly once");
}

/// Issue 21's defect: a host whose agent refused scripts used up its automation's attempts on refusals, and
/// once scripts were turned on it was not retried until the next scheduled answer (an hour), or at all.
async fn refused_runs_are_no_attempts_and_enabling_scripts_resumes_at_once(store: Store) {
    use herd_core::policy::PolicyResponse;
    use herd_store::{ReportedAnswer, RunOutcome};
    let host = store.enroll_host(&enroll("h", "k"), NOW).await.unwrap().checkin.id;
    let script = store.create_script(None, "fix.sh", "echo fix", NOW).await.unwrap();
    let policy = store.create_policy(&remediated_policy("p", script, false), None, None, NOW).await.unwrap();
    let answer = |response| [ReportedAnswer { policy_id: policy, revision: Some(1), response }];
    // The agent has not said yet: the first failure queues a run, which the agent then refuses.
    store.record_policy_results(host, &answer(PolicyResponse::Fail), NOW).await.unwrap();
    let run = store.pending_executions(host).await.unwrap().remove(0);
    assert!(store.set_scripts_enabled(host, false, NOW + 1).await.unwrap().is_empty());
    let refused = "scripts are disabled on this host's agent";
    assert!(
        store
            .record_execution_result(host, &run.execution_id, RunOutcome::Refused, None, refused, None, NOW + 2)
            .await
            .unwrap()
    );
    let stored = store.execution(&run.execution_id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.timed_out), (herd_core::execution::ExecutionStatus::Error, false));
    // While the agent refuses, failing answers queue nothing (no hourly run refused again, no attempt used).
    for t in 1..=6 {
        store.record_policy_results(host, &answer(PolicyResponse::Fail), NOW + t * herd_core::HOUR_MS).await.unwrap();
        assert!(store.pending_executions(host).await.unwrap().is_empty(), "report {t}");
    }
    let feed = store.list_activities(0, 100).await.unwrap();
    assert!(!feed.iter().any(|a| a.kind == "policy_automation_gave_up"), "refusals are no attempts");
    // Scripts on: the failing automated policy is due at the next check-in, with the host flagged.
    let later = NOW + 7 * herd_core::HOUR_MS;
    // Agents reporting at once (several servers): exactly one report resumes.
    let reports: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.set_scripts_enabled(host, true, later + i).await.unwrap() })
        })
        .collect();
    let mut resumed = Vec::new();
    for report in reports {
        let policies = report.await.unwrap();
        if !policies.is_empty() {
            resumed.push(policies);
        }
    }
    assert_eq!(resumed, vec![vec![policy]], "resumed once");
    assert!(store.set_scripts_enabled(host, true, later + 20).await.unwrap().is_empty(), "only when it changes");
    let (checkin, runs) = store.host_checkin_and_runs(host).await.unwrap().unwrap();
    assert!(checkin.recheck_requested_at.is_some() && !runs.contains_key(&policy), "{runs:?}");
    // The answer that follows queues the first real attempt.
    store.record_policy_results(host, &answer(PolicyResponse::Fail), later + 2).await.unwrap();
    let queued = store.pending_executions(host).await.unwrap();
    assert_eq!(queued.len(), 1, "the automation runs now");
    let feed = store.list_activities(0, 100).await.unwrap();
    let fired = feed.iter().filter(|a| a.kind == "policy_automation_fired").map(|a| a.details["attempt"].clone());
    assert_eq!(
        fired.collect::<Vec<_>>(),
        [serde_json::json!(1), serde_json::json!(1)],
        "the refused run counted for nothing"
    );
}

async fn failing_policy_automation_runs_once_then_retries_then_gives_up(store: Store) {
    use herd_core::policy::PolicyResponse;
    use herd_store::ReportedAnswer;
    let host = store.enroll_host(&enroll("h", "k"), NOW).await.unwrap().checkin.id;
    let script = store.create_script(None, "fix.sh", "echo fix", NOW).await.unwrap();
    let fields = remediated_policy("p", script, false);
    let policy = store.create_policy(&fields, None, None, NOW).await.unwrap();
    let answer = |response| [ReportedAnswer { policy_id: policy, revision: Some(1), response }];
    let pending = |store: Store| async move { store.pending_executions(host).await.unwrap() };

    store.record_policy_results(host, &answer(PolicyResponse::Pass), NOW).await.unwrap();
    assert!(pending(store.clone()).await.is_empty(), "passing hosts are left alone");
    store.record_policy_results(host, &answer(PolicyResponse::Fail), NOW + 1).await.unwrap();
    let queued = pending(store.clone()).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (queued[0].policy_id, queued[0].script_id, queued[0].contents.as_str()),
        (Some(policy), Some(script), "echo fix")
    );
    assert!(store.host_checkin_and_runs(host).await.unwrap().unwrap().0.pending_scripts);
    let views = store.host_policy_answers(host, None).await.unwrap();
    assert!(views[0].remediating && views[0].response == PolicyResponse::Fail);
    assert_eq!(store.get_policy(policy).await.unwrap().unwrap().remediating_host_count, 1);
    store.record_policy_results(host, &answer(PolicyResponse::Fail), NOW + 2).await.unwrap();
    assert_eq!(pending(store.clone()).await.len(), 1, "never two pending runs for one host and policy");

    // The fix ran but the host still fails: retried after the backoff, at most 3 times.
    let mut t = NOW + 10;
    let mut runs = 1;
    loop {
        let run = pending(store.clone()).await.remove(0);
        store
            .record_execution_result(
                host,
                &run.execution_id,
                herd_store::RunOutcome::Ran,
                Some(1),
                "still broken",
                Some(5),
                t,
            )
            .await
            .unwrap();
        assert!(!store.host_policy_answers(host, None).await.unwrap()[0].remediating);
        store.record_policy_results(host, &answer(PolicyResponse::Fail), t + 1).await.unwrap();
        assert!(pending(store.clone()).await.is_empty(), "not before the backoff");
        t += herd_core::HOUR_MS + 1;
        store.record_policy_results(host, &answer(PolicyResponse::Fail), t).await.unwrap();
        if pending(store.clone()).await.is_empty() {
            break;
        }
        runs += 1;
    }
    assert_eq!(runs, 4, "the first run and 3 retries");
    let feed = store.list_activities(0, 100).await.unwrap();
    let count = |kind: &str| feed.iter().filter(|a| a.kind == kind).count();
    assert_eq!(count("policy_automation_fired"), 4);
    assert_eq!(count("policy_automation_gave_up"), 1);
    store.record_policy_results(host, &answer(PolicyResponse::Fail), t + herd_core::HOUR_MS).await.unwrap();
    let feed = store.list_activities(0, 100).await.unwrap();
    assert_eq!(feed.iter().filter(|a| a.kind == "policy_automation_gave_up").count(), 1, "said once");
    assert_eq!(feed[0].actor_id, None, "herd itself, no user");
    // Giving up is the host's state, not a job: housekeeping's pruning of finished jobs (a week on) does not
    // make herd say it again (it did while a done job was the marker).
    store.prune_finished_jobs(t + 8 * 24 * herd_core::HOUR_MS).await.unwrap();
    store.record_policy_results(host, &answer(PolicyResponse::Fail), t + 8 * 24 * herd_core::HOUR_MS).await.unwrap();
    let feed = store.list_activities(0, 100).await.unwrap();
    assert_eq!(feed.iter().filter(|a| a.kind == "policy_automation_gave_up").count(), 1, "still said once");
    assert!(pending(store.clone()).await.is_empty(), "and no run");

    // Fixed: a later new failure starts over.
    store.record_policy_results(host, &answer(PolicyResponse::Pass), t + 1).await.unwrap();
    store.record_policy_results(host, &answer(PolicyResponse::Fail), t + 2).await.unwrap();
    assert_eq!(pending(store.clone()).await.len(), 1);
}

async fn automations_reset_makes_a_failing_host_new_again(store: Store) {
    use herd_core::policy::PolicyResponse;
    use herd_store::{AutomationRules, ReportedAnswer};
    let host = store.enroll_host(&enroll("h", "k"), NOW).await.unwrap().checkin.id;
    let script = store.create_script(None, "fix.sh", "echo fix", NOW).await.unwrap();
    let fields = remediated_policy("p", script, false);
    let policy = store.create_policy(&fields, None, None, NOW).await.unwrap();
    let fail = [ReportedAnswer { policy_id: policy, revision: Some(1), response: PolicyResponse::Fail }];
    let report = |at: i64| {
        let store = store.clone();
        async move { store.record_report(host, &fail, None, at, &AutomationRules::default(), firing_job).await.unwrap() }
    };
    report(NOW).await;
    let run = store.pending_executions(host).await.unwrap().remove(0);
    store
        .record_execution_result(
            host,
            &run.execution_id,
            herd_store::RunOutcome::Ran,
            Some(1),
            "no luck",
            Some(5),
            NOW + 10,
        )
        .await
        .unwrap();
    report(NOW + 20).await;
    assert_eq!(fired(&store).await.len(), 1, "a continuing failure is not new");
    assert!(store.pending_executions(host).await.unwrap().is_empty(), "retry waits for its backoff");

    assert_eq!(store.reset_automations(&[policy, 424242], NOW + 30).await.unwrap(), 1);
    report(NOW + 40).await;
    assert_eq!(fired(&store).await, vec![(policy, NOW), (policy, NOW + 40)], "new again after the reset");
    assert_eq!(store.pending_executions(host).await.unwrap().len(), 1, "the script runs again at once");
    report(NOW + 50).await;
    assert_eq!(fired(&store).await.len(), 2, "only the first answer after the reset");
}

/// Records each firing as a job (the report's transaction enqueues it), as the server's webhooks do.
fn firing_job(firing: &herd_store::FiringPolicy<'_>) -> Vec<NewJob> {
    vec![NewJob {
        idempotency_key: format!("firing:{}:{}:{}", firing.policy_id, firing.host_id, firing.now),
        payload: JobPayload::FailingPolicyWebhook {
            policy_id: firing.policy_id,
            host_id: firing.host_id,
            failed_at: firing.now,
            destination_url: String::new(),
        },
        max_attempts: 1,
        run_at: firing.now,
    }]
}

/// (policy, when) of every firing so far, in order.
async fn fired(store: &Store) -> Vec<(i64, i64)> {
    let mut jobs: Vec<(i64, i64)> = store
        .list_jobs(JobKind::FailingPolicyWebhook, None, 1000)
        .await
        .unwrap()
        .iter()
        .map(|j| match j.payload {
            JobPayload::FailingPolicyWebhook { policy_id, failed_at, .. } => (policy_id, failed_at),
            _ => unreachable!("only firings are enqueued"),
        })
        .collect();
    jobs.sort_by_key(|(_, at)| *at);
    jobs
}

fn remediated_policy(name: &str, script: i64, continuous: bool) -> herd_store::PolicyFields {
    herd_store::PolicyFields {
        name: name.into(),
        query: "SELECT 1;".into(),
        description: String::new(),
        resolution: String::new(),
        platform: String::new(),
        critical: false,
        interval_seconds: None,
        script_id: Some(script),
        webhook_url: None,
        continuous_automation: continuous,
        deferral: None,
        labels: Default::default(),
    }
}

async fn continuous_automations_fire_on_every_scheduled_failure(store: Store) {
    use herd_core::policy::PolicyResponse;
    use herd_store::{AutomationRules, ReportOrigin, ReportedAnswer};
    let host = store.enroll_host(&enroll("h", "k"), NOW).await.unwrap().checkin.id;
    let script = store.create_script(None, "fix.sh", "echo fix", NOW).await.unwrap();
    let policy = store.create_policy(&remediated_policy("p", script, true), None, None, NOW).await.unwrap();
    let fail = [ReportedAnswer { policy_id: policy, revision: Some(1), response: PolicyResponse::Fail }];
    let report = |at: i64, origin: ReportOrigin| {
        let store = store.clone();
        async move {
            store
                .record_report(host, &fail, None, at, &AutomationRules { origin, ..Default::default() }, firing_job)
                .await
                .unwrap();
        }
    };
    let finish_pending = |at: i64| {
        let store = store.clone();
        async move {
            for run in store.pending_executions(host).await.unwrap() {
                store
                    .record_execution_result(
                        host,
                        &run.execution_id,
                        herd_store::RunOutcome::Ran,
                        Some(1),
                        "",
                        Some(1),
                        at,
                    )
                    .await
                    .unwrap();
            }
        }
    };
    report(NOW, ReportOrigin::Scheduled).await;
    assert_eq!(store.pending_executions(host).await.unwrap().len(), 1);
    report(NOW + 1, ReportOrigin::Scheduled).await;
    assert_eq!(store.pending_executions(host).await.unwrap().len(), 1, "never two pending runs");
    assert_eq!(fired(&store).await.len(), 2, "every scheduled failing result fires");
    finish_pending(NOW + 2).await;
    report(NOW + 3, ReportOrigin::Recheck).await;
    assert!(store.pending_executions(host).await.unwrap().is_empty(), "a re-check waits for the schedule");
    assert_eq!(fired(&store).await.len(), 2);
    // No retry limit and no backoff: five more scheduled failures, five more runs.
    for i in 0..5 {
        report(NOW + 10 + 2 * i, ReportOrigin::Scheduled).await;
        assert_eq!(store.pending_executions(host).await.unwrap().len(), 1);
        finish_pending(NOW + 11 + 2 * i).await;
    }
    assert_eq!(fired(&store).await.len(), 7);
    let feed = store.list_activities(0, 100).await.unwrap();
    assert_eq!(feed.iter().filter(|a| a.kind == "policy_automation_fired").count(), 6);
    assert_eq!(feed.iter().filter(|a| a.kind == "policy_automation_gave_up").count(), 0);
}

async fn finished_remediations_make_their_policies_due_again(store: Store) {
    use herd_core::policy::PolicyResponse;
    use herd_store::ReportedAnswer;
    let host = store.enroll_host(&enroll("h", "k"), NOW).await.unwrap().checkin.id;
    let script = store.create_script(None, "fix.sh", "echo fix", NOW).await.unwrap();
    let a = store.create_policy(&remediated_policy("a", script, false), None, None, NOW).await.unwrap();
    let b = store.create_policy(&remediated_policy("b", script, false), None, None, NOW).await.unwrap();
    let c = store.create_policy(&remediated_policy("c", script, false), None, None, NOW).await.unwrap();
    let answers = [
        ReportedAnswer { policy_id: a, revision: Some(1), response: PolicyResponse::Fail },
        ReportedAnswer { policy_id: b, revision: Some(1), response: PolicyResponse::Fail },
        ReportedAnswer { policy_id: c, revision: Some(1), response: PolicyResponse::Pass },
    ];
    store.record_policy_results(host, &answers, NOW).await.unwrap();
    let runs = store.pending_executions(host).await.unwrap();
    assert_eq!(runs.len(), 2);
    store
        .record_execution_result(
            host,
            &runs[0].execution_id,
            herd_store::RunOutcome::Ran,
            Some(0),
            "",
            Some(1),
            NOW + 1,
        )
        .await
        .unwrap();
    assert!(store.request_automation_recheck(host, NOW + 1).await.unwrap().is_empty(), "a run is still pending");
    assert_eq!(store.host_checkin_and_runs(host).await.unwrap().unwrap().0.recheck_requested_at, None);
    store
        .record_execution_result(
            host,
            &runs[1].execution_id,
            herd_store::RunOutcome::Ran,
            Some(0),
            "",
            Some(1),
            NOW + 2,
        )
        .await
        .unwrap();
    assert_eq!(store.request_automation_recheck(host, NOW + 2).await.unwrap(), vec![a, b]);
    let checkin = store.host_checkin_and_runs(host).await.unwrap().unwrap().0;
    assert_eq!(checkin.recheck_requested_at, Some(NOW + 2));
    let runs_left: Vec<i64> = store.host_checkin_and_runs(host).await.unwrap().unwrap().1.into_keys().collect();
    assert_eq!(runs_left, vec![c], "the remediated policies have no run: they are due");
    assert!(store.changed_hosts_since(0).await.unwrap().iter().any(|c| c.host_id == host), "servers evict it");

    // Their answers arrive: the request is done, and nothing is left to re-check.
    let fixed = [
        ReportedAnswer { policy_id: a, revision: Some(1), response: PolicyResponse::Pass },
        ReportedAnswer { policy_id: b, revision: Some(1), response: PolicyResponse::Pass },
    ];
    store.record_policy_results(host, &fixed, NOW + 3).await.unwrap();
    assert_eq!(store.host_checkin_and_runs(host).await.unwrap().unwrap().0.recheck_requested_at, None);
    assert!(store.request_automation_recheck(host, NOW + 4).await.unwrap().is_empty());
}

async fn automation_rules_set_retries_and_timeout(store: Store) {
    use herd_core::policy::PolicyResponse;
    use herd_store::{AutomationRules, ReportedAnswer};
    let host = store.enroll_host(&enroll("h", "k"), NOW).await.unwrap().checkin.id;
    let script = store.create_script(None, "fix.sh", "echo fix", NOW).await.unwrap();
    let policy = store.create_policy(&remediated_policy("p", script, false), None, None, NOW).await.unwrap();
    let fail = [ReportedAnswer { policy_id: policy, revision: Some(1), response: PolicyResponse::Fail }];
    let rules = AutomationRules { script_retries: 0, script_timeout_s: 7, ..Default::default() };
    store.record_report(host, &fail, None, NOW, &rules, |_| Vec::new()).await.unwrap();
    let run = store.pending_executions(host).await.unwrap().remove(0);
    assert_eq!(run.timeout_s, 7);
    store
        .record_execution_result(host, &run.execution_id, herd_store::RunOutcome::Ran, Some(1), "", Some(1), NOW + 1)
        .await
        .unwrap();
    let later = NOW + herd_core::DAY_MS;
    store.record_report(host, &fail, None, later, &rules, |_| Vec::new()).await.unwrap();
    assert!(store.pending_executions(host).await.unwrap().is_empty(), "no retries allowed");
    let feed = store.list_activities(0, 100).await.unwrap();
    assert_eq!(feed.iter().filter(|a| a.kind == "policy_automation_gave_up").count(), 1);
}

/// A deferrable automation: the run waits as `deferred`, the agent learns of it once, a prompt starts the
/// deadline, choices are checked (a second one refused, state unchanged), retries keep the state, and the
/// policy passing again cancels the waiting run.
async fn deferrable_runs_wait_on_the_user_and_end_when_the_policy_passes(store: Store) {
    use herd_core::deferral::{DeferOption, DeferralSettings};
    use herd_core::policy::PolicyResponse;
    use herd_store::{AgentDeferralStatus, AutomationRules, ChoiceRefused, ReportedAnswer};
    let host = store.enroll_host(&enroll("h", "k"), NOW).await.unwrap().checkin.id;
    let script = store.create_script(None, "reboot.sh", "echo reboot", NOW).await.unwrap();
    let settings: DeferralSettings =
        serde_json::from_str(r#"{"options": ["1h", "4h"], "max_deferrals": 1, "deadline_after": "1d"}"#).unwrap();
    let fields = herd_store::PolicyFields {
        deferral: Some(serde_json::to_string(&settings).unwrap()),
        ..remediated_policy("p", script, false)
    };
    let policy = store.create_policy(&fields, None, None, NOW).await.unwrap();
    let rules = settings.rules().unwrap();
    let answer = |response| [ReportedAnswer { policy_id: policy, revision: Some(1), response }];
    let report = |at: i64, response| {
        let store = store.clone();
        async move {
            let answers = answer(response);
            store.record_report(host, &answers, None, at, &AutomationRules::default(), |_| Vec::new()).await.unwrap();
        }
    };
    let checkin = || async { store.host_checkin_and_runs(host).await.unwrap().unwrap().0 };

    report(NOW, PolicyResponse::Fail).await;
    assert!(store.pending_executions(host).await.unwrap().is_empty(), "nothing runs without asking");
    assert!(checkin().await.pending_scripts, "the agent is told to fetch");
    let old_agent = store.agent_script_work(host, false, NOW + 1).await.unwrap();
    assert_eq!(old_agent.len(), 1);
    assert!(old_agent[0].1.is_none(), "an agent that cannot defer gets an ordinary run");
    assert!(!checkin().await.pending_scripts, "fetched: nothing new for the agent");
    let work = store.agent_script_work(host, true, NOW + 1).await.unwrap();
    let (execution, record) = (&work[0].0, work[0].1.clone().unwrap());
    assert_eq!(execution.status, "deferred");
    assert_eq!((record.first_prompt_at, record.prompt_open, record.deferrals_used), (None, false, 0));

    let one_hour = DeferOption::parse("1h").unwrap();
    let refused = store.choose_deferral(host, policy, &rules, Some(one_hour), "1h", None, NOW + 2).await.unwrap();
    assert!(matches!(refused, Err(ChoiceRefused::Conflict(_))), "no prompt open yet: {refused:?}");
    let prompted = store
        .record_agent_deferral_status(
            host,
            &execution.execution_id,
            AgentDeferralStatus::Prompting,
            Some("Europe/Berlin"),
            NOW + 10,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((prompted.first_prompt_at, prompted.prompt_open), (Some(NOW + 10), true));
    let not_offered = DeferOption::parse("2h").unwrap();
    let refused = store.choose_deferral(host, policy, &rules, Some(not_offered), "2h", None, NOW + 20).await.unwrap();
    assert!(matches!(refused, Err(ChoiceRefused::NotOffered(_))), "{refused:?}");
    let chosen = store
        .choose_deferral(host, policy, &rules, Some(one_hour), "1h", Some("alice"), NOW + 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((chosen.scheduled_at, chosen.deferrals_used), (Some(NOW + 20 + herd_core::HOUR_MS), 1));
    assert_eq!((chosen.chosen_by.as_deref(), chosen.time_zone.as_deref()), (Some("alice"), Some("Europe/Berlin")));
    assert!(checkin().await.pending_scripts, "the choice reaches the agent");
    let twice = store.choose_deferral(host, policy, &rules, Some(one_hour), "1h", None, NOW + 21).await.unwrap();
    assert!(matches!(twice, Err(ChoiceRefused::Conflict(_))), "{twice:?}");
    assert_eq!(store.host_deferral(host, policy).await.unwrap().unwrap(), chosen, "a refused choice changes nothing");

    // The scheduled run happens and does not fix it: the retry waits on the user again, deadline unchanged.
    store
        .record_execution_result(
            host,
            &execution.execution_id,
            herd_store::RunOutcome::Ran,
            Some(1),
            "",
            Some(5),
            NOW + 30,
        )
        .await
        .unwrap();
    let after_run = store.host_deferral(host, policy).await.unwrap().unwrap();
    assert_eq!((after_run.scheduled_at, after_run.deferrals_used), (None, 1));
    let retry_at = NOW + 30 + 10 * herd_core::MINUTE_MS;
    report(retry_at, PolicyResponse::Fail).await;
    let work = store.agent_script_work(host, true, retry_at).await.unwrap();
    let retry = work[0].1.clone().expect("the retry is deferrable too");
    assert_ne!(retry.execution_id.as_deref(), Some(execution.execution_id.as_str()));
    assert_eq!((retry.first_prompt_at, retry.deferrals_used), (Some(NOW + 10), 1), "same failure, same state");

    // Someone fixed it: the waiting run is cancelled and the state closes.
    report(retry_at + 1, PolicyResponse::Pass).await;
    let closed = store.host_deferral(host, policy).await.unwrap().unwrap();
    assert!(!closed.open);
    assert_eq!(closed.execution_status, Some(herd_store::ExecutionStatus::Cancelled));
    assert!(store.agent_script_work(host, true, retry_at + 2).await.unwrap().is_empty());
    let feed = store.list_activities(0, 100).await.unwrap();
    let kinds: Vec<&str> = feed.iter().map(|a| a.kind.as_str()).collect();
    assert!(kinds.contains(&"chose_deferral") && kinds.contains(&"cancelled_deferred_run"), "{kinds:?}");

    // A new failure starts afresh.
    report(retry_at + 2, PolicyResponse::Fail).await;
    let fresh = store.host_deferral(host, policy).await.unwrap().unwrap();
    assert_eq!((fresh.open, fresh.first_prompt_at, fresh.deferrals_used), (true, None, 0));
}

async fn profiles_reconcile_answer_verify_and_follow_team_moves(store: Store) {
    use herd_core::jobs::ReconcileScope;
    use herd_core::profiles::{Limits, Operation, Status};
    use herd_store::NewProfile;
    let limits = Limits { grace_ms: 1_000, max_retries: 1 };
    let profile = |identifier: &str, checksum: &str| NewProfile {
        identifier: identifier.into(),
        name: identifier.into(),
        platform: "linux".into(),
        format: "herd".into(),
        payload_types: vec!["file".into()],
        contents: "{}".into(),
        checksum: checksum.into(),
        labels: Default::default(),
    };
    let team = store.create_team("Servers", "", &[], NOW).await.unwrap();
    let host = store.enroll_host(&enroll("h", "k"), NOW).await.unwrap().checkin.id;
    let created = store.create_profile(Some(team), &profile("com.a", "sum-a"), NOW).await.unwrap();
    assert!(store.create_profile(Some(team), &profile("com.a", "x"), NOW).await.is_err(), "one identifier per team");
    // The agent says it applies profiles; the host is in no team yet: nothing expected.
    store.enable_host_profiles(host, NOW).await.unwrap();
    assert!(store.profile_commands(host).await.unwrap().is_empty());
    // The move enqueues the reconcile in its own transaction; the job queues the install, once.
    store.transfer_hosts(Some(team), &[host], NOW + 1).await.unwrap();
    let jobs = store.claim_jobs(&[JobKind::ProfileReconcile], "test", 10, 60_000, NOW + 2).await.unwrap();
    let moved = ReconcileScope::Hosts { host_ids: vec![host] };
    assert!(jobs.iter().any(|j| j.payload == JobPayload::ProfileReconcile(moved.clone())), "{jobs:?}");
    for job in &jobs {
        let JobPayload::ProfileReconcile(scope) = &job.payload else { unreachable!("claimed by kind") };
        store.reconcile_profiles(scope, NOW + 2).await.unwrap();
    }
    assert_eq!(store.reconcile_profiles(&moved, NOW + 3).await.unwrap(), 0, "idempotent");
    let commands = store.profile_commands(host).await.unwrap();
    assert_eq!(
        (commands.len(), commands[0].operation, commands[0].identifier.as_str()),
        (1, Operation::Install, "com.a")
    );
    assert!(store.host_checkin_and_runs(host).await.unwrap().unwrap().0.pending_profiles, "the check-in says so");
    // A stale answer changes nothing; the current one moves it to verifying, then the report verifies it.
    store.record_profile_results(host, &[("stale".into(), None)], &limits, NOW + 4).await.unwrap();
    assert_eq!(store.host_profiles(host).await.unwrap()[0].status, Some(Status::Pending));
    store.record_profile_results(host, &[(commands[0].command_uuid.clone(), None)], &limits, NOW + 5).await.unwrap();
    assert!(store.host_checkin_and_runs(host).await.unwrap().unwrap().0.profiles_verifying);
    store.verify_host_profiles(host, &[("com.a".into(), "sum-a".into(), NOW + 5)], &limits, NOW + 6).await.unwrap();
    assert_eq!(store.host_profiles(host).await.unwrap()[0].status, Some(Status::Verified));
    assert_eq!(store.profiles_summary(Some(team)).await.unwrap().verified, 1);
    // Drift with one retry left: sent again; again: failed with the reason.
    store.verify_host_profiles(host, &[("com.a".into(), "edited".into(), NOW + 5)], &limits, NOW + 7).await.unwrap();
    let retried = &store.host_profiles(host).await.unwrap()[0];
    assert_eq!((retried.status, retried.retries), (Some(Status::Pending), 1));
    let command = store.profile_commands(host).await.unwrap().remove(0);
    store
        .record_profile_results(host, &[(command.command_uuid, Some("disk full".into()))], &limits, NOW + 8)
        .await
        .unwrap();
    let failed = &store.host_profiles(host).await.unwrap()[0];
    assert_eq!(failed.status, Some(Status::Failed));
    assert!(failed.detail.as_deref().unwrap().contains("disk full"), "{failed:?}");
    assert_eq!(store.profiles_summary(Some(team)).await.unwrap().failed, 1);
    // Deleting the profile queues its remove; the acknowledged remove drops the row.
    store.delete_profile(&created.uuid, NOW + 9).await.unwrap().unwrap();
    store.reconcile_profiles(&ReconcileScope::Set { scope_key: team }, NOW + 9).await.unwrap();
    let remove = store.profile_commands(host).await.unwrap().remove(0);
    assert_eq!(remove.operation, Operation::Remove);
    store.record_profile_results(host, &[(remove.command_uuid, None)], &limits, NOW + 10).await.unwrap();
    assert!(store.host_profiles(host).await.unwrap().is_empty());
}

/// A policy's deferral document is read one way everywhere (`herd_core::deferral`). One the server cannot read
/// (here an unknown field, as from another release) used to make the store queue runs that wait on the user,
/// while the server showed no deferral and refused every choice: the fix waited forever. It now runs at once.
async fn an_unreadable_deferral_document_defers_nothing(store: Store) {
    use herd_core::policy::PolicyResponse;
    use herd_store::ReportedAnswer;
    let host = store.enroll_host(&enroll("h", "k"), NOW).await.unwrap().checkin.id;
    let script = store.create_script(None, "fix.sh", "echo fix", NOW).await.unwrap();
    for (name, document) in
        [("unknown field", r#"{"enabled": true, "colour": "red"}"#), ("bad option", r#"{"options": ["whenever"]}"#)]
    {
        let mut fields = remediated_policy(name, script, false);
        fields.deferral = Some(document.into());
        let policy = store.create_policy(&fields, None, None, NOW).await.unwrap();
        let answers = [ReportedAnswer { policy_id: policy, revision: Some(1), response: PolicyResponse::Fail }];
        store.record_policy_results(host, &answers, NOW + 1).await.unwrap();
        let queued = store.pending_executions(host).await.unwrap();
        assert!(queued.iter().any(|run| run.policy_id == Some(policy)), "{name}: the run is not held for a prompt");
        assert!(store.host_deferrals(host).await.unwrap().iter().all(|d| d.policy_id != policy), "{name}: no deferral");
    }
}

/// Giving up is a read of the run history then a write of the host's state: reports of one host arriving at
/// once (several servers, a resend) must still say it once — the report's host lock and the upsert's
/// condition together. Many reports at once, then the feed is counted.
async fn concurrent_failing_reports_give_up_once(store: Store) {
    use herd_core::policy::PolicyResponse;
    use herd_store::{ReportedAnswer, RunOutcome};
    let host = store.enroll_host(&enroll("h", "k"), NOW).await.unwrap().checkin.id;
    let script = store.create_script(None, "fix.sh", "echo fix", NOW).await.unwrap();
    let policy = store.create_policy(&remediated_policy("p", script, false), None, None, NOW).await.unwrap();
    let failing = [ReportedAnswer { policy_id: policy, revision: Some(1), response: PolicyResponse::Fail }];
    // The first run and its 3 retries, each failing to fix it.
    let mut t = NOW + 1;
    for _ in 0..4 {
        store.record_policy_results(host, &failing, t).await.unwrap();
        let run = store.pending_executions(host).await.unwrap().remove(0);
        store.record_execution_result(host, &run.execution_id, RunOutcome::Ran, Some(1), "", Some(1), t).await.unwrap();
        t += herd_core::HOUR_MS + 1;
    }
    let reports = (0..16).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.record_policy_results(host, &failing, t + i).await.unwrap() })
    });
    for report in reports.collect::<Vec<_>>() {
        report.await.unwrap();
    }
    let feed = store.list_activities(0, 200).await.unwrap();
    assert_eq!(feed.iter().filter(|a| a.kind == "policy_automation_gave_up").count(), 1);
    assert!(store.pending_executions(host).await.unwrap().is_empty(), "no fifth run");
}
