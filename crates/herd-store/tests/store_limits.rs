//! The Store under hostile sizes and concurrency: requests naming 100,000 ids, many writers of one row at
//! once. Every case runs on SQLite and on PostgreSQL (`HERD_TEST_DATABASE_URL`, set by scripts/test).

#[macro_use]
mod common;

use herd_core::policy::PolicyResponse;
use herd_core::vitals::VitalsPatch;
use herd_store::{EnrollHost, HostFilter, HostOrder, PolicyFields, ReportedAnswer, Store, StoreError};
use std::time::Instant;

const NOW: i64 = 1_750_000_000_000;

store_cases!(
    multi_thread;
    id_lists_of_any_length_are_one_parameter,
    concurrent_config_updates_all_survive,
    concurrent_enrollments_of_one_uuid_leave_one_row,
    device_tokens_belong_to_the_host_that_registered_them,
    concurrent_secret_replacements_apply_one_after_the_other,
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

fn policy(name: &str) -> PolicyFields {
    PolicyFields::new(name, "SELECT 1;")
}

/// 100,000 ids (a few of them real) in every statement that takes a request's id list: one parameter per id
/// would exceed SQLite's 32,766 and PostgreSQL's 65,535 parameters.
async fn id_lists_of_any_length_are_one_parameter(store: Store) {
    let team = store.create_team("Servers", "", &[], NOW).await.unwrap();
    let mut hosts = Vec::new();
    for i in 0..3 {
        hosts.push(store.enroll_host(&enroll(&format!("U{i}"), &format!("k{i}")), NOW).await.unwrap().checkin.id);
    }
    let mut policies = Vec::new();
    for i in 0..3 {
        policies.push(store.create_policy(&policy(&format!("p{i}")), None, None, NOW).await.unwrap());
    }
    let answers: Vec<ReportedAnswer> = policies
        .iter()
        .map(|p| ReportedAnswer { policy_id: *p, revision: Some(1), response: PolicyResponse::Fail })
        .collect();
    store.record_policy_results(hosts[0], &answers, NOW).await.unwrap();

    // Far more ids than either backend's parameter limit, the real ones among them, and repeats.
    let mut ids: Vec<i64> = (1_000_000..1_100_000).collect();
    ids.extend(hosts.iter().chain(&policies));
    ids.extend(hosts.iter().chain(&policies));
    let timed = Instant::now();

    let filter = HostFilter { ids: Some(ids.clone()), ..Default::default() };
    let listed = store.list_hosts(&filter, HostOrder::Id, false, 0, 10, NOW).await.unwrap();
    assert_eq!(listed.iter().map(|h| h.id).collect::<Vec<_>>(), hosts);
    assert_eq!(store.count_hosts(&filter, NOW).await.unwrap(), 3);
    let visible = HostFilter { visible_teams: Some(ids.iter().copied().chain([team]).collect()), ..Default::default() };
    assert_eq!(store.count_hosts(&visible, NOW).await.unwrap(), 0, "no host is in the team yet");

    assert_eq!(store.transfer_hosts(Some(team), &ids, NOW).await.unwrap(), 3);
    assert_eq!(store.count_hosts(&visible, NOW).await.unwrap(), 3);
    let counts = store.failing_policy_counts(&ids).await.unwrap();
    assert_eq!(counts.get(&hosts[0]), Some(&3));
    assert_eq!(counts.len(), 1);

    assert_eq!(store.get_policies(&ids).await.unwrap().iter().map(|p| p.id).collect::<Vec<_>>(), policies);
    assert_eq!(store.reset_automations(&ids, NOW + 1).await.unwrap(), 3);
    assert_eq!(store.delete_policies(&ids).await.unwrap(), 3);
    assert!(store.get_policies(&policies).await.unwrap().is_empty());
    eprintln!("{:?}: 100,000-id statements took {:?}", store.backend(), timed.elapsed());

    // An empty list matches nothing (not everything).
    let none = HostFilter { ids: Some(Vec::new()), ..Default::default() };
    assert_eq!(store.count_hosts(&none, NOW).await.unwrap(), 0);
    let no_team = HostFilter { visible_teams: Some(Vec::new()), ..Default::default() };
    assert_eq!(store.count_hosts(&no_team, NOW).await.unwrap(), 0);
    assert_eq!(store.transfer_hosts(None, &[], NOW).await.unwrap(), 0);
    assert_eq!(store.delete_policies(&[]).await.unwrap(), 0);
    assert!(store.failing_policy_counts(&[]).await.unwrap().is_empty());
    // The policy counts stay what a recount says.
    assert_eq!(store.stored_policy_counts().await.unwrap(), store.recount_policy_answers().await.unwrap());
}

/// Many read-merge-writes of the configuration at once, each setting its own key: none is lost.
async fn concurrent_config_updates_all_survive(store: Store) {
    const WRITERS: usize = 24;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .update_app_config(NOW, |current| {
                        let mut document = current.unwrap_or_else(|| serde_json::json!({}));
                        document[format!("section_{i}")] = serde_json::json!({"set_by": i});
                        Ok::<_, StoreError>(document)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let document = store.app_config().await.unwrap().expect("saved");
    for i in 0..WRITERS {
        assert_eq!(document[format!("section_{i}")], serde_json::json!({"set_by": i}), "writer {i} lost: {document}");
    }
    // An update that fails changes nothing.
    let refused =
        store.update_app_config(NOW, |_| Err::<serde_json::Value, _>(StoreError::Conflict("refused".into()))).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))));
    assert_eq!(store.app_config().await.unwrap(), Some(document));
}

/// osqueryd retries its enrollment, clones share a uuid, several servers serve one fleet: enrollments of
/// one uuid at once all succeed, on one row, and the last node key is the one that works.
async fn concurrent_enrollments_of_one_uuid_leave_one_row(store: Store) {
    const ENROLLMENTS: usize = 40;
    let tasks: Vec<_> = (0..ENROLLMENTS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(
                async move { store.enroll_host(&enroll("SAME-UUID", &format!("key-{i}")), NOW + i as i64).await },
            )
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().expect("every enrollment succeeds").checkin.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one host row: {ids:?}");
    assert_eq!(store.host_count().await.unwrap(), 1);
    let mut working = 0;
    for i in 0..ENROLLMENTS {
        if store.host_checkin_by_node_key(&format!("key-{i}")).await.unwrap().is_some() {
            working += 1;
        }
    }
    assert_eq!(working, 1, "exactly one node key (the last written) works");
    // One enrollment inserted; every other one replaced a node key some server may have cached.
    let notes = store.changed_hosts_since(NOW).await.unwrap();
    assert_eq!(notes.iter().filter(|c| c.host_id == ids[0]).count(), ENROLLMENTS - 1, "{notes:?}");
    let host = store.get_host(ids[0]).await.unwrap().unwrap();
    assert_eq!(host.hostname, "host-SAME-UUID");
    // Creation is the inserting enrollment's (tasks commit in any order, so not necessarily the smallest).
    assert!((NOW..NOW + ENROLLMENTS as i64).contains(&host.created_at));

    // Re-enrolling keeps the details the host did not send, and the team.
    let team = store.create_team("Kept", "", &[], NOW).await.unwrap();
    store.transfer_hosts(Some(team), &ids, NOW).await.unwrap();
    let mut bare = enroll("SAME-UUID", "key-bare");
    bare.details = VitalsPatch::default();
    bare.team_id = None;
    assert_eq!(store.enroll_host(&bare, NOW + 100).await.unwrap().checkin.id, ids[0]);
    let host = store.get_host(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (host.hostname.as_str(), host.team_id, host.last_enrolled_at),
        ("host-SAME-UUID", Some(team), NOW + 100)
    );
    assert!(store.changed_hosts_since(NOW + 100).await.unwrap().iter().any(|c| c.host_id == ids[0]));
}

async fn device_tokens_belong_to_the_host_that_registered_them(store: Store) {
    let owner = store.enroll_host(&enroll("OWNER", "k1"), NOW).await.unwrap().checkin.id;
    let thief = store.enroll_host(&enroll("THIEF", "k2"), NOW).await.unwrap().checkin.id;
    store.register_device_token(owner, "t1", NOW).await.unwrap();
    store.register_device_token(owner, "t1", NOW + 1).await.unwrap();
    assert!(matches!(store.register_device_token(thief, "t1", NOW + 2).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.host_by_device_token("t1").await.unwrap(), Some(owner), "the owner keeps it");
    // The owner rotates: its previous token stays its own too.
    store.register_device_token(owner, "t2", NOW + 3).await.unwrap();
    assert!(matches!(store.register_device_token(thief, "t1", NOW + 4).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.host_by_device_token("t1").await.unwrap(), Some(owner));
    assert_eq!(store.host_by_device_token("t2").await.unwrap(), Some(owner));
    // Going back to its previous token is the owner's right.
    store.register_device_token(owner, "t1", NOW + 5).await.unwrap();
    assert_eq!(store.host_by_device_token("t1").await.unwrap(), Some(owner));

    // Many hosts registering one new token at once: exactly one gets it.
    let mut hosts = Vec::new();
    for i in 0..12 {
        hosts.push(
            store.enroll_host(&enroll(&format!("RACE{i}"), &format!("race-key-{i}")), NOW).await.unwrap().checkin.id,
        );
    }
    let tasks: Vec<_> = hosts
        .iter()
        .map(|host| {
            let (store, host) = (store.clone(), *host);
            tokio::spawn(async move { (host, store.register_device_token(host, "contested", NOW + 10).await) })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (host, Ok(())) => winners.push(host),
            (_, Err(StoreError::Conflict(_))) => {}
            (_, Err(other)) => panic!("a loser must get a conflict, not {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(store.host_by_device_token("contested").await.unwrap(), Some(winners[0]));
}

/// Admins (or servers) replacing a scope's enroll secrets at once: each replacement applies whole, one after
/// the other — none fails on the rows another is replacing, and the result is one of the lists, not a mix.
async fn concurrent_secret_replacements_apply_one_after_the_other(store: Store) {
    let team = store.create_team("secrets", "", &[], NOW).await.unwrap();
    for scope in [None, Some(team)] {
        for round in 0..4 {
            let lists: Vec<Vec<String>> = (0..8)
                .map(|writer| {
                    // Half the writers send the same list (the identical retry), half their own.
                    let tag = if writer % 2 == 0 { "same".to_string() } else { format!("own-{writer}") };
                    vec![format!("{scope:?}-{round}-{tag}-a"), format!("{scope:?}-{round}-{tag}-b")]
                })
                .collect();
            let mut writers = tokio::task::JoinSet::new();
            for list in lists.clone() {
                let store = store.clone();
                writers.spawn(async move { store.replace_enroll_secrets(scope, &list, NOW).await });
            }
            while let Some(result) = writers.join_next().await {
                result.unwrap().unwrap_or_else(|err| panic!("scope {scope:?}, round {round}: {err}"));
            }
            let mut stored: Vec<String> =
                store.enroll_secrets(scope).await.unwrap().into_iter().map(|s| s.secret).collect();
            stored.sort();
            assert!(lists.contains(&stored), "scope {scope:?}, round {round}: {stored:?} is not one writer's list");
        }
    }
}
