//! The REST side of a run: creating the policies a scenario needs, and checking at the end that what the
//! server stored matches what the simulated hosts reported (counts exactly, a sample of hosts in detail).

use crate::net::{Conn, Endpoint as Server};
use crate::sim::HostOutcome;
use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use hyper::Method;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub struct Admin<'a> {
    server: &'a Server,
    conn: Conn,
    token: String,
}

impl<'a> Admin<'a> {
    pub async fn login(server: &'a Server, email: &str, password: &str) -> anyhow::Result<Admin<'a>> {
        let conn = server.connect().await.map_err(|e| anyhow!("connecting to the server: {e}"))?;
        let mut admin = Admin { server, conn, token: String::new() };
        let reply = admin
            .call(Method::POST, "/api/v1/fleet/login", Some(json!({"email": email, "password": password})))
            .await?;
        admin.token = reply["token"].as_str().ok_or_else(|| anyhow!("login answered without a token"))?.to_string();
        Ok(admin)
    }

    async fn call(&mut self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let bytes = body.map(|b| Bytes::from(b.to_string()));
        let bearer = (!self.token.is_empty()).then_some(self.token.as_str());
        let (status, body) =
            match self.server.send_as(&mut self.conn, method.clone(), path, bytes.clone(), bearer).await {
                Ok(reply) => reply,
                // The connection may have been closed while idle: once more on a fresh one.
                Err(_) => {
                    self.conn = self.server.connect().await.map_err(|e| anyhow!("reconnecting: {e}"))?;
                    self.server
                        .send_as(&mut self.conn, method, path, bytes, bearer)
                        .await
                        .map_err(|e| anyhow!("{path}: {e}"))?
                }
            };
        let value: Value = serde_json::from_slice(&body).with_context(|| format!("{path}: not JSON"))?;
        if !status.is_success() {
            bail!("{path} answered {status}: {value}");
        }
        Ok(value)
    }

    /// Makes sure `count` global policies named `perf policy N` exist; returns their ids.
    pub async fn ensure_policies(&mut self, count: usize) -> anyhow::Result<Vec<i64>> {
        let listed = self.call(Method::GET, "/api/v1/fleet/global/policies", None).await?;
        let mut by_name: BTreeMap<String, i64> = listed["policies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["id"].as_i64()?)))
            .collect();
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            let name = format!("perf policy {i}");
            let id = match by_name.remove(&name) {
                Some(id) => id,
                None => {
                    // Realistic policy SQL; the simulated hosts answer by their pass probability, not by running it.
                    let query = match i % 4 {
                        0 => format!("SELECT 1 FROM os_version WHERE major >= {};", 18 + i % 6),
                        1 => format!("SELECT 1 FROM users WHERE username = 'svc{i}' LIMIT 1;"),
                        2 => "SELECT 1 FROM osquery_info WHERE version >= '5.0.0';".to_string(),
                        _ => format!("SELECT 1 FROM file WHERE path = '/etc/perf/{i}.conf';"),
                    };
                    let body = json!({"name": name, "query": query, "platform": "linux"});
                    let created = self.call(Method::POST, "/api/v1/fleet/global/policies", Some(body)).await?;
                    created["policy"]["id"].as_i64().ok_or_else(|| anyhow!("policy create answered without an id"))?
                }
            };
            ids.push(id);
        }
        Ok(ids)
    }

    /// Makes sure `count` labels named `perf label N` exist (see `--labels`), and scopes every fourth of
    /// `policies` to one of the criteria labels; returns the labels' ids.
    pub async fn ensure_labels(&mut self, count: usize, policies: &[i64]) -> anyhow::Result<Vec<i64>> {
        let listed = self.call(Method::GET, "/api/v1/fleet/labels", None).await?;
        let mut by_name: BTreeMap<String, i64> = listed["labels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| Some((l["name"].as_str()?.to_string(), l["id"].as_i64()?)))
            .collect();
        let mut ids = Vec::with_capacity(count);
        let mut criteria_labels = Vec::new();
        for i in 0..count {
            let name = format!("perf label {i}");
            let body = match i % 4 {
                0 => json!({"name": name, "query": format!("SELECT 1 FROM file WHERE path = '/etc/perf/label{i}';")}),
                1 => json!({"name": name, "host_ids": []}),
                2 => json!({"name": name, "criteria": {"platform": "linux"}}),
                _ => json!({"name": name, "criteria": {"policy": {"id": policies[0], "result": "failing"}}}),
            };
            if i % 4 >= 2 {
                criteria_labels.push(name.clone());
            }
            let id = match by_name.remove(&name) {
                Some(id) => id,
                None => {
                    let created = self.call(Method::POST, "/api/v1/fleet/labels", Some(body)).await?;
                    created["label"]["id"].as_i64().ok_or_else(|| anyhow!("label create answered without an id"))?
                }
            };
            ids.push(id);
        }
        for (n, policy) in policies.iter().enumerate().skip(1).step_by(4) {
            let Some(label) = criteria_labels.get(n / 4 % criteria_labels.len().max(1)) else { break };
            let body = json!({"labels_include_any": [label]});
            self.call(Method::PATCH, &format!("/api/v1/fleet/global/policies/{policy}"), Some(body)).await?;
        }
        Ok(ids)
    }

    /// Creates a global policy; returns its id.
    pub async fn create_policy(&mut self, name: &str, query: &str) -> anyhow::Result<i64> {
        let body = json!({"name": name, "query": query});
        let created = self.call(Method::POST, "/api/v1/fleet/global/policies", Some(body)).await?;
        created["policy"]["id"].as_i64().ok_or_else(|| anyhow!("policy create answered without an id"))
    }

    /// A global policy's (passing, failing) host counts.
    pub async fn policy_counts(&mut self, id: i64) -> anyhow::Result<(i64, i64)> {
        let got = self.call(Method::GET, &format!("/api/v1/fleet/global/policies/{id}"), None).await?;
        let count = |field: &str| got["policy"][field].as_i64().ok_or_else(|| anyhow!("policy {id} has no {field}"));
        Ok((count("passing_host_count")?, count("failing_host_count")?))
    }

    /// Compares the server's counts and a sample of hosts with what the hosts reported and had acknowledged.
    pub async fn verify(&mut self, outcomes: &[HostOutcome], sample: usize) -> anyhow::Result<CheckReport> {
        let mut report = CheckReport::default();
        let mut expected: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for host in outcomes {
            for (policy, passes) in &host.answered {
                let entry = expected.entry(*policy).or_default();
                if *passes { entry.0 += 1 } else { entry.1 += 1 }
            }
        }
        let listed = self.call(Method::GET, "/api/v1/fleet/global/policies", None).await?;
        for policy in listed["policies"].as_array().into_iter().flatten() {
            let Some(id) = policy["id"].as_i64() else { continue };
            let Some(&(passing, failing)) = expected.get(&id) else { continue };
            report.policies_checked += 1;
            let got = (
                policy["passing_host_count"].as_i64().unwrap_or(-1),
                policy["failing_host_count"].as_i64().unwrap_or(-1),
            );
            if got != (passing, failing) {
                report
                    .mismatches
                    .push(format!("policy {id}: server counts {got:?}, hosts reported {:?}", (passing, failing)));
            }
        }
        let enrolled: Vec<&HostOutcome> = outcomes.iter().filter(|h| h.enrolled).collect();
        let count = self.call(Method::GET, "/api/v1/fleet/hosts/count", None).await?;
        report.hosts_on_server = count["count"].as_i64().unwrap_or(-1);
        report.hosts_enrolled = enrolled.len() as i64;
        if report.hosts_on_server < report.hosts_enrolled {
            report
                .mismatches
                .push(format!("{} hosts enrolled, the server has {}", report.hosts_enrolled, report.hosts_on_server));
        }
        let step = (enrolled.len() / sample.max(1)).max(1);
        for host in enrolled.iter().step_by(step).take(sample) {
            report.hosts_checked += 1;
            let found = self.call(Method::GET, &format!("/api/v1/fleet/hosts/identifier/{}", host.uuid), None).await?;
            let got = &found["host"];
            if got["hostname"] != host.hostname.as_str() {
                report.mismatches.push(format!("host {}: hostname {} on the server", host.uuid, got["hostname"]));
            }
            let responses: BTreeMap<i64, String> = got["policies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p["id"].as_i64()?, p["response"].as_str()?.to_string())))
                .collect();
            for (policy, passes) in &host.answered {
                let want = if *passes { "pass" } else { "fail" };
                if responses.get(policy).map(String::as_str) != Some(want) {
                    report.mismatches.push(format!(
                        "host {} policy {policy}: server says {:?}, host reported {want}",
                        host.hostname,
                        responses.get(policy)
                    ));
                }
            }
        }
        Ok(report)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    pub policies_checked: usize,
    pub hosts_checked: usize,
    pub hosts_enrolled: i64,
    pub hosts_on_server: i64,
    pub mismatches: Vec<String>,
}
