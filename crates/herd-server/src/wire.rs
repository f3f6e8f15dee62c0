//! Store records to Fleet's wire shapes.

use crate::state::AppState;
use chrono::{DateTime, SecondsFormat, Utc};
use herd_core::Millis;
use herd_core::host_status::host_status;
use herd_proto::fleet::{Activity, EnrollSecret, Host, HostIssues, HostPolicy, Policy, Team, User, UserTeam};
use herd_store::{ActivityRecord, HostPolicyAnswer, HostRecord, PolicyRecord, StoredSecret, TeamRecord, UserRecord};

pub fn rfc3339(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A host; `failing_policies_count` comes from the caller, who can count for many hosts at once.
pub fn host(state: &AppState, record: HostRecord, failing_policies_count: i64, now: Millis) -> Host {
    // A check-in this server has not flushed yet is still a check-in.
    let seen_time = record.seen_time.max(state.seen.get(record.id));
    let status = host_status(seen_time, record.distributed_interval, record.config_tls_refresh, now);
    let display_name =
        if record.computer_name.is_empty() { record.hostname.clone() } else { record.computer_name.clone() };
    Host {
        id: record.id,
        uuid: record.uuid,
        osquery_host_id: record.osquery_host_id,
        display_name,
        hostname: record.hostname,
        computer_name: record.computer_name,
        platform: record.platform,
        platform_like: record.platform_like,
        os_version: record.os_version,
        build: record.os_build,
        osquery_version: record.osquery_version,
        hardware_serial: record.hardware_serial,
        hardware_model: record.hardware_model,
        hardware_vendor: record.hardware_vendor,
        cpu_brand: record.cpu_brand,
        cpu_type: record.cpu_type,
        cpu_physical_cores: record.cpu_physical_cores,
        cpu_logical_cores: record.cpu_logical_cores,
        memory: record.memory,
        uptime: record.uptime_seconds.map(|s| s.saturating_mul(1_000_000_000)),
        primary_ip: record.primary_ip,
        primary_mac: record.primary_mac,
        gigs_disk_space_available: record.gigs_disk_space_available,
        percent_disk_space_available: record.percent_disk_space_available,
        gigs_total_disk_space: record.gigs_total_disk_space,
        distributed_interval: record.distributed_interval,
        config_tls_refresh: record.config_tls_refresh,
        logger_tls_period: record.logger_tls_period,
        team_id: record.team_id,
        team_name: record.team_name,
        status: status.as_str().to_string(),
        seen_time: seen_time.map(rfc3339),
        created_at: rfc3339(record.created_at),
        last_enrolled_at: rfc3339(record.last_enrolled_at),
        detail_updated_at: record.detail_updated_at.map(rfc3339),
        refetch_requested: record.refetch_requested_at.is_some(),
        policy_updated_at: record.policy_updated_at.map(rfc3339),
        scripts_enabled: record.scripts_enabled.map(|v| v != 0),
        mdm_migration: herd_proto::fleet::HostMigration {
            managed_by_other: record.managed_by_other.map(|v| v != 0),
            state: record.migration_state.as_str().to_string(),
            started_at: record.migration_started_at.map(rfc3339),
            window_closes_at: record.migration_window_until.map(rfc3339),
        },
        issues: HostIssues { failing_policies_count, total_issues_count: failing_policies_count },
        policies: None,
        labels: None,
        deferrals: None,
        mdm: None,
    }
}

pub fn secret(stored: StoredSecret) -> EnrollSecret {
    EnrollSecret { secret: stored.secret, created_at: Some(rfc3339(stored.created_at)), team_id: stored.team_id }
}

pub fn team(record: TeamRecord) -> Team {
    Team {
        id: record.id,
        name: record.name,
        description: record.description,
        host_count: record.host_count,
        user_count: record.user_count,
        agent_options: record.agent_options,
        // Validated on the way in; a document that no longer reads shows as no webhook.
        webhook_settings: record.webhook_settings.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default(),
        secrets: record.secrets.into_iter().map(secret).collect(),
        created_at: rfc3339(record.created_at),
    }
}

pub fn user(record: &UserRecord) -> User {
    User {
        id: record.id,
        name: record.name.clone(),
        email: record.email.clone(),
        global_role: record.global_role.map(|r| r.as_str().to_string()),
        teams: record
            .team_roles
            .iter()
            .map(|(id, name, role)| UserTeam { id: *id, name: name.clone(), role: role.as_str().to_string() })
            .collect(),
        api_only: record.api_only,
        sso_enabled: false,
        force_password_reset: record.force_password_reset,
        gravatar_url: String::new(),
        created_at: rfc3339(record.created_at),
        updated_at: rfc3339(record.updated_at),
    }
}

pub fn policy(record: PolicyRecord) -> Policy {
    Policy {
        id: record.id,
        name: record.name,
        query: record.query,
        description: record.description,
        resolution: record.resolution,
        platform: record.platform,
        critical: record.critical,
        team_id: record.team_id,
        author_id: record.author_id,
        author_name: record.author_name,
        author_email: record.author_email,
        interval: record.interval_seconds,
        created_at: rfc3339(record.created_at),
        updated_at: rfc3339(record.updated_at),
        passing_host_count: record.passing_host_count,
        failing_host_count: record.failing_host_count,
        host_count_updated_at: record.host_count_updated_at.map(rfc3339),
        remediating_host_count: record.remediating_host_count,
        run_script: record
            .script_id
            .zip(record.script_name)
            .map(|(id, name)| herd_proto::fleet::RunScript { id, name }),
        deferral: crate::app::deferrals::stored_settings(record.id, record.deferral.as_deref()),
        webhook_url: record.webhook_url,
        continuous_automation: record.continuous_automation,
        labels_include_any: label_idents(&record.labels.include_any, &record.label_names),
        labels_include_all: label_idents(&record.labels.include_all, &record.label_names),
        labels_exclude_any: label_idents(&record.labels.exclude_any, &record.label_names),
    }
}

/// Labels of a scope as Fleet shows them (a label deleted meanwhile is left out).
pub fn label_idents(
    ids: &[i64],
    names: &std::collections::BTreeMap<i64, String>,
) -> Vec<herd_proto::fleet::LabelIdent> {
    ids.iter().filter_map(|id| Some(herd_proto::fleet::LabelIdent { id: *id, name: names.get(id)?.clone() })).collect()
}

/// A label as Fleet's API shows it.
pub fn label(record: herd_store::LabelRecord, host_ids: Option<Vec<i64>>) -> herd_proto::fleet::Label {
    herd_proto::fleet::Label {
        id: record.id,
        display_text: record.name.clone(),
        name: record.name,
        description: record.description,
        query: record.query,
        platform: record.platform,
        label_type: if record.builtin { "builtin" } else { "regular" }.to_string(),
        label_membership_type: record.kind.as_str().to_string(),
        criteria: record.criteria.as_deref().and_then(|text| serde_json::from_str(text).ok()),
        broken_reason: record.broken_reason,
        author_id: record.author_id,
        team_id: None,
        host_count: record.host_count,
        count: record.host_count,
        created_at: rfc3339(record.created_at),
        updated_at: rfc3339(record.updated_at),
        host_ids,
    }
}

/// A label in a host view.
pub fn host_label(entry: herd_store::HostLabel) -> herd_proto::fleet::HostLabel {
    let record = entry.label;
    herd_proto::fleet::HostLabel {
        id: record.id,
        name: record.name,
        description: record.description,
        query: record.query,
        platform: record.platform,
        label_type: if record.builtin { "builtin" } else { "regular" }.to_string(),
        label_membership_type: record.kind.as_str().to_string(),
        created_at: rfc3339(record.created_at),
        updated_at: rfc3339(record.updated_at),
        error: entry.error,
    }
}

pub fn host_policy(answer: HostPolicyAnswer) -> HostPolicy {
    let p = answer.policy;
    HostPolicy {
        id: p.id,
        name: p.name,
        query: p.query,
        description: p.description,
        resolution: p.resolution,
        platform: p.platform,
        critical: p.critical,
        team_id: p.team_id,
        response: answer.response.as_wire().to_string(),
        remediating: answer.remediating,
    }
}

pub fn activity(record: ActivityRecord) -> Activity {
    Activity {
        id: record.id,
        created_at: rfc3339(record.created_at),
        actor_full_name: record.actor_name,
        actor_id: record.actor_id,
        actor_email: record.actor_email,
        kind: record.kind,
        details: record.details,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000_123), "2023-11-14T22:13:20Z");
    }
}
