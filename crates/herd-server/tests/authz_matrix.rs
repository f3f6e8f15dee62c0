//! Authorization over every route, from one table.
//!
//! `ROWS` says, for each route the server answers, what a request needs: nothing, any user, an action
//! (`herd_core::roles::Action`) in the scope of the object it names, an agent's node key, a device token, or a
//! console session. The matrix test sends each row as every role (observer, maintainer, admin; globally and in
//! team "alpha"; and signed out) at objects in the user's own team (alpha), in another team (bravo), in the
//! global scope, and nowhere (ids that do not exist), and fails on:
//! - a 2xx the role table forbids, or a refusal where it allows;
//! - an existence leak: an object the user cannot read answered differently from a missing one;
//! - a listing or page that shows a user something of a team they cannot read (every bravo object's name
//!   carries "bravo");
//! - user tokens accepted on agent endpoints, or agent credentials on user endpoints;
//! - a route without a row (`herd_server::api::route_table()` lists every route; each one's methods come from
//!   the `Allow` header of its 405), or a row without a route.
//!
//! The named defects of issue 16 also have their own cases below.

use herd_core::roles::{Action, Actor, Role, Scope};
use herd_testkit::{ENROLL_SECRET, Server, TestHost};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

herd_testkit::server_cases!(
    authorization_matrix,
    team_maintainers_cannot_run_other_scopes_scripts,
    configuration_is_reduced_for_all_but_global_admins,
    other_teams_cannot_be_probed_by_name_or_id,
);

const PASSWORD: &str = "user-password-1!";
const MISSING: i64 = 999_999;
/// Webhook URLs carry tokens: each is visible only to those who may change it (`SECRETS`).
const WEBHOOK_URL: &str = "https://hooks.example.test/services/T0KEN-config";
const TEAM_HOOK: &str = "https://hooks.example.test/services/T0KEN-team";
const ALPHA_POLICY_HOOK: &str = "https://hooks.example.test/services/T0KEN-alpha-policy";
const GLOBAL_POLICY_HOOK: &str = "https://hooks.example.test/services/T0KEN-global-policy";

// ---------------------------------------------------------------------------------------------------------------
// The table

/// What a request needs to succeed.
#[derive(Clone, Copy, Debug)]
enum Need {
    /// Nothing (health, login, static assets).
    Public,
    /// Any signed-in user (their own session, listings filtered to what they may read).
    AnyUser,
    /// `Action` in the scope of the object the request names (the global scope for rows without one).
    On(Action),
    /// `Action` in the user's own team (alpha) on something naming an object of the target's scope, which
    /// must be that same scope (a script run on alpha's host, an automation of alpha's policy): only alpha's
    /// objects succeed; another scope's are refused, and unreadable ones answer as missing ones.
    SameScope(Action),
    /// An agent's node key (or, for enroll, an enroll secret) in the body.
    Agent,
    /// A device token in the path.
    Device,
    /// A console session cookie: any signed-in user (pages filtered to what they may read).
    ConsolePage,
    /// A console session cookie; then `Action` as `On`.
    Console(Action),
    /// A console form: a session cookie and its CSRF token (what it does is the REST function's, covered by
    /// the REST rows).
    ConsoleForm,
}

/// Which objects a row is sent at.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Targets {
    /// None: one request, in the global scope.
    None,
    /// Alpha's, bravo's, the global scope's and a missing one.
    Scopes,
    /// Alpha, bravo and a missing team (the row names a team, not a scope).
    Teams,
    /// Bravo and a missing team (deleting alpha would end the test).
    OtherTeams,
}

/// A row that changes or deletes its object gets a new one for every request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fresh {
    No,
    Host,
    Script,
    Policy,
    Profile,
    Team,
    User,
    /// A new (manual) label.
    Label,
    /// A new session of the requesting user (logout ends it).
    Session,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Surface {
    /// Under `/api/v1/fleet` and `/api/latest/fleet`.
    Fleet,
    /// Under `/api/v1/fleet` only (Fleet's `EndingAtVersion("v1")`).
    FleetV1,
    /// Under `/api/latest/fleet` only (Fleet's `StartingAtVersion("2022-04")`).
    FleetLatest,
    /// At the root.
    Root,
}

enum Body {
    None,
    Json(Value),
    /// A file upload: (form field, file name, contents, team).
    Upload(&'static str, String, Vec<u8>, Option<i64>),
    /// A form (console): the CSRF token is added per user.
    Form(Vec<(String, String)>),
}

struct Req {
    path: String,
    body: Body,
}

type Build = fn(&Objects, &Fixture, u64) -> Req;

struct Row {
    method: &'static str,
    surface: Surface,
    route: &'static str,
    need: Need,
    targets: Targets,
    fresh: Fresh,
    /// Success when it is not 2xx: the status and a text the answer contains (a route whose test objects
    /// cannot be in the needed state, a form that redirects).
    ok: Option<(u16, &'static str)>,
    /// Sent one at a time, after the others: rows that replace a scope's whole set (enroll secrets, profile
    /// batches) would otherwise take away what concurrent rows are using.
    serial: bool,
    build: Build,
}

const fn row(
    method: &'static str,
    surface: Surface,
    route: &'static str,
    need: Need,
    targets: Targets,
    build: Build,
) -> Row {
    Row { method, surface, route, need, targets, fresh: Fresh::No, ok: None, serial: false, build }
}

impl Row {
    const fn fresh(mut self, fresh: Fresh) -> Row {
        self.fresh = fresh;
        self
    }
    const fn serial(mut self) -> Row {
        self.serial = true;
        self
    }
    const fn ok(mut self, status: u16, text: &'static str) -> Row {
        self.ok = Some((status, text));
        self
    }
}

fn req(path: impl Into<String>) -> Req {
    Req { path: path.into(), body: Body::None }
}

fn req_json(path: impl Into<String>, body: Value) -> Req {
    Req { path: path.into(), body: Body::Json(body) }
}

fn form(path: impl Into<String>, fields: &[(&str, String)]) -> Req {
    Req { path: path.into(), body: Body::Form(fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()) }
}

/// `?team_id=N` for a team's scope, nothing for the global one.
fn team_query(o: &Objects) -> String {
    o.team.map(|t| format!("?team_id={t}")).unwrap_or_default()
}

fn profile_doc(identifier: &str, name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"identifier": identifier, "name": name,
        "payloads": [{"type": "file", "path": "/etc/herd-authz", "content": name}]}))
    .unwrap()
}

use Action::{AdministerServer, AdministerTeam, Read, Refetch, Write};
use Need::{Agent, AnyUser, Console, ConsoleForm, ConsolePage, Device, On, Public, SameScope};
use Surface::{Fleet, FleetLatest, FleetV1, Root};
use Targets::{OtherTeams, Scopes, Teams};

fn rows() -> Vec<Row> {
    let none = Targets::None;
    vec![
        // Sessions.
        row("POST", Fleet, "/login", Public, none, |_, _, _| {
            req_json("/login", json!({"email": "g-observer@herd.test", "password": PASSWORD}))
        }),
        row("POST", Fleet, "/logout", AnyUser, none, |_, _, _| req("/logout")).fresh(Fresh::Session),
        row("GET", Fleet, "/me", AnyUser, none, |_, _, _| req("/me")),
        row("POST", Fleet, "/change_password", AnyUser, none, |_, _, _| {
            req_json("/change_password", json!({"old_password": PASSWORD, "new_password": PASSWORD}))
        }),
        // Only for users whose password an admin set; everyone else is told no reset is required.
        row("POST", Fleet, "/perform_required_password_reset", AnyUser, none, |_, _, _| {
            req_json("/perform_required_password_reset", json!({"new_password": PASSWORD}))
        })
        .ok(422, "no password reset is required"),
        // Users: global admins only (everyone may read themselves, not tested here).
        row("GET", Fleet, "/users", On(AdministerServer), none, |_, _, _| req("/users")),
        row("POST", Fleet, "/users/admin", On(AdministerServer), none, |_, _, n| {
            let email = format!("created-{n}@herd.test");
            req_json(
                "/users/admin",
                json!({"name": email, "email": email, "password": PASSWORD, "global_role": "observer"}),
            )
        }),
        row("GET", Fleet, "/users/{id}", On(AdministerServer), none, |_, f, _| req(format!("/users/{}", f.victim))),
        row("PATCH", Fleet, "/users/{id}", On(AdministerServer), none, |_, f, _| {
            req_json(format!("/users/{}", f.victim), json!({"name": "victim"}))
        }),
        row("DELETE", Fleet, "/users/{id}", On(AdministerServer), none, |o, _, _| req(format!("/users/{}", o.user)))
            .fresh(Fresh::User),
        // Teams.
        row("GET", Fleet, "/teams", AnyUser, none, |_, _, _| req("/teams")),
        row("POST", Fleet, "/teams", On(AdministerServer), none, |_, _, n| {
            req_json("/teams", json!({"name": format!("created-{n}")}))
        }),
        row("GET", Fleet, "/teams/{id}", On(Read), Teams, |o, _, _| req(format!("/teams/{}", o.team_id()))),
        row("PATCH", Fleet, "/teams/{id}", On(AdministerTeam), Teams, |o, _, _| {
            req_json(format!("/teams/{}", o.team_id()), json!({"description": "patched"}))
        }),
        row("DELETE", Fleet, "/teams/{id}", On(AdministerServer), OtherTeams, |o, _, _| {
            req(format!("/teams/{}", o.team_id()))
        })
        .fresh(Fresh::Team),
        row("GET", Fleet, "/teams/{id}/secrets", On(Write), Teams, |o, _, _| {
            req(format!("/teams/{}/secrets", o.team_id()))
        }),
        row("PATCH", Fleet, "/teams/{id}/secrets", On(Write), Teams, |o, _, _| {
            req_json(format!("/teams/{}/secrets", o.team_id()), json!({"secrets": [{"secret": o.secret}]}))
        })
        .serial(),
        row("POST", Fleet, "/teams/{id}/agent_options", On(AdministerTeam), Teams, |o, _, _| {
            req_json(format!("/teams/{}/agent_options", o.team_id()), json!({"config": {}}))
        }),
        // A new team from a spec: global admins only (updating an existing one by name needs its team admin).
        row("POST", Fleet, "/spec/teams", On(AdministerServer), none, |_, _, n| {
            req_json("/spec/teams", json!({"specs": [{"name": format!("spec team {n}")}]}))
        }),
        row("GET", Fleet, "/spec/enroll_secret", On(Write), none, |_, _, _| req("/spec/enroll_secret")),
        row("POST", Fleet, "/spec/enroll_secret", On(Write), none, |_, _, _| {
            req_json("/spec/enroll_secret", json!({"spec": {"secrets": [{"secret": ENROLL_SECRET}]}}))
        })
        .serial(),
        // Hosts.
        row("GET", Fleet, "/hosts", AnyUser, none, |_, _, _| req("/hosts")),
        row("GET", Fleet, "/hosts", On(Read), Teams, |o, _, _| req(format!("/hosts{}", team_query(o)))),
        row("GET", Fleet, "/hosts/count", AnyUser, none, |_, _, _| req("/hosts/count")),
        row("GET", Fleet, "/host_summary", AnyUser, none, |_, _, _| req("/host_summary")),
        row("GET", Fleet, "/hosts/report", AnyUser, none, |_, _, _| req("/hosts/report?format=csv")),
        row("POST", Fleet, "/hosts/delete", On(Write), Scopes, |o, _, _| {
            req_json("/hosts/delete", json!({"ids": [o.host]}))
        })
        .fresh(Fresh::Host),
        // Fleet's UI path of a host (webhook links): a redirect to the console's page, which asks for a login.
        row("GET", Root, "/hosts/{id}", Public, Scopes, |o, _, _| req(format!("/hosts/{}", o.host))).ok(303, ""),
        row("POST", Fleet, "/hosts/transfer", On(Write), Scopes, |o, _, _| {
            req_json("/hosts/transfer", json!({"team_id": o.team.unwrap_or(0), "hosts": [o.host]}))
        }),
        row("GET", Fleet, "/hosts/identifier/{identifier}", On(Read), Scopes, |o, _, _| {
            req(format!("/hosts/identifier/{}", o.identifier))
        }),
        row("GET", Fleet, "/hosts/{id}", On(Read), Scopes, |o, _, _| req(format!("/hosts/{}", o.host))),
        row("DELETE", Fleet, "/hosts/{id}", On(Write), Scopes, |o, _, _| req(format!("/hosts/{}", o.host)))
            .fresh(Fresh::Host),
        row("POST", Fleet, "/hosts/{id}/refetch", On(Refetch), Scopes, |o, _, _| {
            req(format!("/hosts/{}/refetch", o.host))
        }),
        row("GET", Fleet, "/hosts/{id}/status_logs", On(Read), Scopes, |o, _, _| {
            req(format!("/hosts/{}/status_logs", o.host))
        }),
        // Configuration: everyone reads (reduced unless global admin), global admins change.
        row("GET", Fleet, "/config", AnyUser, none, |_, _, _| req("/config")),
        row("GET", Fleet, "/version", AnyUser, none, |_, _, _| req("/version")),
        row("PATCH", Fleet, "/config", On(AdministerServer), none, |_, _, _| {
            req_json("/config", json!({"org_info": {"org_name": "Acme"}}))
        }),
        // Policies.
        row("GET", FleetV1, "/global/policies", On(Read), none, |_, _, _| req("/global/policies")),
        row("POST", FleetV1, "/global/policies", On(Write), none, |_, _, n| {
            req_json("/global/policies", json!({"name": format!("global created {n}"), "query": "SELECT 1;"}))
        }),
        row("POST", FleetV1, "/global/policies/delete", On(Write), none, |o, _, _| {
            req_json("/global/policies/delete", json!({"ids": [o.policy]}))
        })
        .fresh(Fresh::Policy),
        row("GET", FleetV1, "/global/policies/{id}", On(Read), none, |o, _, _| {
            req(format!("/global/policies/{}", o.policy))
        }),
        row("PATCH", FleetV1, "/global/policies/{id}", On(Write), none, |o, _, _| {
            req_json(format!("/global/policies/{}", o.policy), json!({"description": "patched"}))
        }),
        row("GET", FleetLatest, "/policies", On(Read), none, |_, _, _| req("/policies")),
        row("POST", FleetLatest, "/policies", On(Write), none, |_, _, n| {
            req_json("/policies", json!({"name": format!("latest created {n}"), "query": "SELECT 1;"}))
        }),
        row("POST", FleetLatest, "/policies/delete", On(Write), none, |o, _, _| {
            req_json("/policies/delete", json!({"ids": [o.policy]}))
        })
        .fresh(Fresh::Policy),
        row("GET", FleetLatest, "/policies/{id}", On(Read), none, |o, _, _| req(format!("/policies/{}", o.policy))),
        row("PATCH", FleetLatest, "/policies/{id}", On(Write), none, |o, _, _| {
            req_json(format!("/policies/{}", o.policy), json!({"description": "patched"}))
        }),
        row("GET", Fleet, "/policies/count", On(Read), none, |_, _, _| req("/policies/count")),
        row("GET", Fleet, "/teams/{team_id}/policies", On(Read), Teams, |o, _, _| {
            req(format!("/teams/{}/policies", o.team_id()))
        }),
        row("POST", Fleet, "/teams/{team_id}/policies", On(Write), Teams, |o, _, n| {
            let name = format!("{} created {n}", o.label);
            req_json(format!("/teams/{}/policies", o.team_id()), json!({"name": name, "query": "SELECT 1;"}))
        }),
        // An alpha policy automated by a script of each scope.
        row("POST", Fleet, "/teams/{team_id}/policies", SameScope(Write), Scopes, |o, f, n| {
            let body = json!({"name": format!("automated {n}"), "query": "SELECT 1;", "script_id": o.script});
            req_json(format!("/teams/{}/policies", f.alpha.team_id()), body)
        }),
        row("POST", Fleet, "/teams/{team_id}/policies/delete", On(Write), Teams, |o, _, _| {
            req_json(format!("/teams/{}/policies/delete", o.team_id()), json!({"ids": [o.policy]}))
        })
        .fresh(Fresh::Policy),
        row("GET", Fleet, "/teams/{team_id}/policies/count", On(Read), Teams, |o, _, _| {
            req(format!("/teams/{}/policies/count", o.team_id()))
        }),
        row("GET", Fleet, "/teams/{team_id}/policies/{id}", On(Read), Teams, |o, _, _| {
            req(format!("/teams/{}/policies/{}", o.team_id(), o.policy))
        }),
        row("PATCH", Fleet, "/teams/{team_id}/policies/{id}", On(Write), Teams, |o, _, _| {
            req_json(format!("/teams/{}/policies/{}", o.team_id(), o.policy), json!({"description": "patched"}))
        }),
        row("POST", Fleet, "/spec/policies", On(Write), Scopes, |o, _, n| {
            let spec = json!({"name": format!("{} spec {n}", o.label), "query": "SELECT 1;", "team": o.team_name});
            req_json("/spec/policies", json!({"specs": [spec]}))
        }),
        row("POST", Fleet, "/automations/reset", On(Write), Scopes, |o, _, _| {
            req_json("/automations/reset", json!({"policy_ids": [o.policy]}))
        }),
        row("POST", Fleet, "/automations/reset", On(Write), Teams, |o, _, _| {
            req_json("/automations/reset", json!({"team_ids": [o.team_id()]}))
        }),
        // Labels: global objects, read by any user, written by global maintainers and admins.
        row("GET", Fleet, "/labels", AnyUser, none, |_, _, _| req("/labels")),
        row("POST", Fleet, "/labels", On(Write), none, |_, _, n| {
            req_json("/labels", json!({"name": format!("created label {n}"), "query": "SELECT 1;"}))
        }),
        row("GET", Fleet, "/labels/summary", AnyUser, none, |_, _, _| req("/labels/summary")),
        row("GET", Fleet, "/labels/{id}", AnyUser, none, |o, _, _| req(format!("/labels/{}", o.label_id))),
        row("PATCH", Fleet, "/labels/{id}", On(Write), none, |o, _, _| {
            req_json(format!("/labels/{}", o.label_id), json!({"description": "patched"}))
        }),
        row("DELETE", Fleet, "/labels/{id}", On(Write), none, |o, _, _| {
            req(format!("/labels/{}", o.label_name.replace(' ', "%20")))
        })
        .fresh(Fresh::Label),
        row("DELETE", Fleet, "/labels/id/{id}", On(Write), none, |o, _, _| req(format!("/labels/id/{}", o.label_id)))
            .fresh(Fresh::Label),
        row("GET", Fleet, "/labels/{id}/hosts", AnyUser, none, |o, _, _| req(format!("/labels/{}/hosts", o.label_id))),
        row("GET", Fleet, "/spec/labels", AnyUser, none, |_, _, _| req("/spec/labels")),
        row("POST", Fleet, "/spec/labels", On(Write), none, |_, _, n| {
            req_json("/spec/labels", json!({"specs": [{"name": format!("spec label {n}"), "query": "SELECT 1;"}]}))
        }),
        row("GET", Fleet, "/spec/labels/{name}", AnyUser, none, |o, _, _| {
            req(format!("/spec/labels/{}", o.label_name.replace(' ', "%20")))
        }),
        row("GET", Fleet, "/activities", On(Read), none, |_, _, _| req("/activities")),
        row("GET", Fleet, "/webhook_deliveries", On(AdministerServer), none, |_, _, _| req("/webhook_deliveries")),
        // Scripts.
        row("GET", Fleet, "/scripts", On(Read), Scopes, |o, _, _| req(format!("/scripts{}", team_query(o)))),
        row("POST", Fleet, "/scripts", On(Write), Scopes, |o, _, n| Req {
            path: "/scripts".into(),
            body: Body::Upload("script", format!("{}-created-{n}.sh", o.label), b"echo created".to_vec(), o.team),
        }),
        row("GET", Fleet, "/scripts/{id}", On(Read), Scopes, |o, _, _| req(format!("/scripts/{}", o.script))),
        row("DELETE", Fleet, "/scripts/{id}", On(Write), Scopes, |o, _, _| req(format!("/scripts/{}", o.script)))
            .fresh(Fresh::Script),
        row("POST", Fleet, "/scripts/run", On(Write), Scopes, |o, _, _| {
            req_json("/scripts/run", json!({"host_id": o.host, "script_id": o.script}))
        }),
        row("POST", Fleet, "/scripts/run", On(Write), Scopes, |o, _, _| {
            req_json("/scripts/run", json!({"host_id": o.host, "script_name": o.script_name, "team_id": o.team}))
        }),
        // Alpha's host with a script of each scope, by id and by name.
        row("POST", Fleet, "/scripts/run", SameScope(Write), Scopes, |o, f, _| {
            req_json("/scripts/run", json!({"host_id": f.alpha.host, "script_id": o.script}))
        }),
        row("POST", Fleet, "/scripts/run", SameScope(Write), Scopes, |o, f, _| {
            req_json("/scripts/run", json!({"host_id": f.alpha.host, "script_name": o.script_name, "team_id": o.team}))
        }),
        row("POST", Fleet, "/scripts/run/sync", On(Write), Scopes, |o, _, _| {
            req_json("/scripts/run/sync", json!({"host_id": o.host, "script_id": o.script}))
        }),
        row("GET", Fleet, "/scripts/results/{execution_id}", On(Read), Scopes, |o, _, _| {
            req(format!("/scripts/results/{}", o.execution))
        }),
        row("GET", Fleet, "/hosts/{id}/scripts", On(Read), Scopes, |o, _, _| req(format!("/hosts/{}/scripts", o.host))),
        // Configuration profiles.
        row("GET", Fleet, "/configuration_profiles", On(Read), Scopes, |o, _, _| {
            req(format!("/configuration_profiles{}", team_query(o)))
        }),
        row("POST", Fleet, "/configuration_profiles", On(Write), Scopes, |o, _, n| {
            let doc = profile_doc(&format!("com.herd.{}.created{n}", o.label), &format!("{} created {n}", o.label));
            Req { path: "/configuration_profiles".into(), body: Body::Upload("profile", "p.json".into(), doc, o.team) }
        }),
        row("GET", Fleet, "/configuration_profiles/summary", On(Read), Scopes, |o, _, _| {
            req(format!("/configuration_profiles/summary{}", team_query(o)))
        }),
        row("GET", Fleet, "/configuration_profiles/{uuid}", On(Read), Scopes, |o, _, _| {
            req(format!("/configuration_profiles/{}", o.profile))
        }),
        row("DELETE", Fleet, "/configuration_profiles/{uuid}", On(Write), Scopes, |o, _, _| {
            req(format!("/configuration_profiles/{}", o.profile))
        })
        .fresh(Fresh::Profile),
        row("POST", Fleet, "/mdm/profiles/batch", On(Write), Scopes, |o, _, _| {
            use base64::Engine;
            let contents = base64::engine::general_purpose::STANDARD.encode(&o.profile_doc);
            let body = json!({"profiles": [{"name": "p.json", "contents": contents}]});
            req_json(format!("/mdm/profiles/batch{}", team_query(o)), body)
        })
        // A batch replaces the scope's whole profile set: concurrent rows using a fresh profile would lose it.
        .serial(),
        row("POST", Fleet, "/mdm/profiles/batch", On(Write), Teams, |o, _, _| {
            use base64::Engine;
            let contents = base64::engine::general_purpose::STANDARD.encode(&o.profile_doc);
            let body = json!({"profiles": [{"name": "p.json", "contents": contents}]});
            req_json(format!("/mdm/profiles/batch?team_name={}", o.team_name), body)
        })
        // A batch replaces the scope's whole profile set: concurrent rows using a fresh profile would lose it.
        .serial(),
        row("GET", Fleet, "/hosts/{id}/configuration_profiles", On(Read), Scopes, |o, _, _| {
            req(format!("/hosts/{}/configuration_profiles", o.host))
        }),
        // The hosts have no profile rows (their agents never asked): resending is "not on this host" (404),
        // which only someone allowed to get that far sees.
        row("POST", Fleet, "/hosts/{id}/configuration_profiles/{uuid}/resend", On(Write), Scopes, |o, _, _| {
            req(format!("/hosts/{}/configuration_profiles/{}/resend", o.host, o.profile))
        })
        .ok(404, "on this host"),
        row("POST", Fleet, "/hosts/{id}/configuration_profiles/resend/{uuid}", On(Write), Scopes, |o, _, _| {
            req(format!("/hosts/{}/configuration_profiles/resend/{}", o.host, o.profile))
        })
        .ok(404, "on this host"),
        // The device API: the token in the path is the credential.
        row("GET", Fleet, "/device/{token}", Device, none, |_, f, _| req(format!("/device/{}", f.device_token))),
        row("GET", Fleet, "/device/{token}/desktop", Device, none, |_, f, _| {
            req(format!("/device/{}/desktop", f.device_token))
        }),
        row("GET", Fleet, "/device/{token}/policies", Device, none, |_, f, _| {
            req(format!("/device/{}/policies", f.device_token))
        }),
        row("POST", Fleet, "/device/{token}/refetch", Device, none, |_, f, _| {
            req(format!("/device/{}/refetch", f.device_token))
        }),
        row("HEAD", Fleet, "/device/{token}/ping", Device, none, |_, f, _| {
            req(format!("/device/{}/ping", f.device_token))
        }),
        row("POST", Fleet, "/device/{token}/migrate_mdm", Device, none, |_, f, _| {
            req(format!("/device/{}/migrate_mdm", f.device_token))
        }),
        row("GET", Fleet, "/device/{token}/transparency", Device, none, |_, f, _| {
            req(format!("/device/{}/transparency", f.device_token))
        })
        .ok(307, ""),
        row("GET", Fleet, "/device/{token}/deferrals", Device, none, |_, f, _| {
            req(format!("/device/{}/deferrals", f.device_token))
        }),
        row("POST", Fleet, "/device/{token}/deferrals/{policy_id}", Device, none, |_, f, _| {
            req_json(format!("/device/{}/deferrals/{}", f.device_token, f.alpha.policy), json!({"choice": "now"}))
        }),
        // The osquery TLS API and herd-agent's endpoints: node keys (enroll: the enroll secret).
        // A new host each time: concurrent first enrollments of one host are not what this test is about.
        row("POST", Root, "/api/osquery/enroll", Agent, none, |_, f, n| {
            req_json("/api/osquery/enroll", TestHost::new(&format!("agent-probe-{n}")).enroll_body(&f.alpha.secret))
        }),
        row("POST", Root, "/api/v1/osquery/enroll", Agent, none, |_, f, n| {
            req_json("/api/v1/osquery/enroll", TestHost::new(&format!("agent-probe-{n}")).enroll_body(&f.alpha.secret))
        }),
        row("POST", Root, "/api/osquery/config", Agent, none, |_, f, _| {
            req_json("/api/osquery/config", json!({"node_key": f.node_key}))
        }),
        row("POST", Root, "/api/v1/osquery/config", Agent, none, |_, f, _| {
            req_json("/api/v1/osquery/config", json!({"node_key": f.node_key}))
        }),
        row("POST", Root, "/api/osquery/distributed/read", Agent, none, |_, f, _| {
            req_json("/api/osquery/distributed/read", json!({"node_key": f.node_key}))
        }),
        row("POST", Root, "/api/v1/osquery/distributed/read", Agent, none, |_, f, _| {
            req_json("/api/v1/osquery/distributed/read", json!({"node_key": f.node_key}))
        }),
        row("POST", Root, "/api/osquery/distributed/write", Agent, none, |_, f, _| {
            req_json("/api/osquery/distributed/write", json!({"node_key": f.node_key, "queries": {}, "statuses": {}}))
        }),
        row("POST", Root, "/api/v1/osquery/distributed/write", Agent, none, |_, f, _| {
            let body = json!({"node_key": f.node_key, "queries": {}, "statuses": {}});
            req_json("/api/v1/osquery/distributed/write", body)
        }),
        row("POST", Root, "/api/osquery/log", Agent, none, |_, f, _| {
            req_json("/api/osquery/log", json!({"node_key": f.node_key, "log_type": "status", "data": []}))
        }),
        row("POST", Root, "/api/v1/osquery/log", Agent, none, |_, f, _| {
            req_json("/api/v1/osquery/log", json!({"node_key": f.node_key, "log_type": "status", "data": []}))
        }),
        row("POST", Root, "/api/fleet/orbit/device_token", Agent, none, |_, f, _| {
            req_json(
                "/api/fleet/orbit/device_token",
                json!({"node_key": f.node_key, "device_auth_token": f.device_token}),
            )
        }),
        row("POST", Root, "/api/v1/fleet/orbit/device_token", Agent, none, |_, f, _| {
            let body = json!({"node_key": f.node_key, "device_auth_token": f.device_token});
            req_json("/api/v1/fleet/orbit/device_token", body)
        }),
        row("POST", Root, "/api/fleet/orbit/scripts/pending", Agent, none, |_, f, _| {
            req_json("/api/fleet/orbit/scripts/pending", json!({"node_key": f.node_key, "scripts_enabled": false}))
        }),
        row("POST", Root, "/api/fleet/orbit/scripts/result", Agent, none, |_, f, _| {
            let body = json!({"node_key": f.node_key, "execution_id": "no-such-execution", "exit_code": 0});
            req_json("/api/fleet/orbit/scripts/result", body)
        })
        // A good node key, a run the host was not given: not found (a bad key is 401).
        .ok(404, "no script execution"),
        // Fleet's orbit (fleetd): its own node key (enroll: the enroll secret; ping: nothing).
        row("POST", Root, "/api/fleet/orbit/enroll", Agent, none, |_, f, n| {
            let body = json!({"enroll_secret": f.alpha.secret, "hardware_uuid": format!("ORBIT-PROBE-{n}")});
            req_json("/api/fleet/orbit/enroll", body)
        }),
        row("POST", Root, "/api/fleet/orbit/config", Agent, none, |_, f, _| {
            req_json("/api/fleet/orbit/config", json!({"orbit_node_key": f.orbit_node_key}))
        }),
        row("POST", Root, "/api/fleet/orbit/scripts/request", Agent, none, |_, f, _| {
            let body = json!({"orbit_node_key": f.orbit_node_key, "execution_id": "no-such-execution"});
            req_json("/api/fleet/orbit/scripts/request", body)
        })
        .ok(404, "no script execution"),
        row("HEAD", Root, "/api/fleet/orbit/ping", Public, none, |_, _, _| req("/api/fleet/orbit/ping")),
        row("POST", Root, "/api/fleet/orbit/ping", Public, none, |_, _, _| req("/api/fleet/orbit/ping")),
        row("POST", Root, "/api/fleet/orbit/deferrals/status", Agent, none, |_, f, _| {
            let body = json!({"node_key": f.node_key, "execution_id": "no-such-execution", "status": "waiting"});
            req_json("/api/fleet/orbit/deferrals/status", body)
        }),
        row("POST", Root, "/api/fleet/orbit/profiles/commands", Agent, none, |_, f, _| {
            req_json("/api/fleet/orbit/profiles/commands", json!({"node_key": f.node_key}))
        }),
        row("POST", Root, "/api/fleet/orbit/profiles/results", Agent, none, |_, f, _| {
            req_json("/api/fleet/orbit/profiles/results", json!({"node_key": f.node_key, "results": []}))
        }),
        // My Device (the device token in the path).
        row("GET", Root, "/device/{token}", Device, none, |_, f, _| req(format!("/device/{}", f.device_token))),
        row("POST", Root, "/device/{token}/refetch", Device, none, |_, f, _| {
            req(format!("/device/{}/refetch", f.device_token))
        }),
        row("POST", Root, "/device/{token}/migrate", Device, none, |_, f, _| {
            req(format!("/device/{}/migrate", f.device_token))
        }),
        row("POST", Root, "/device/{token}/defer/{policy_id}", Device, none, |_, f, _| {
            form(format!("/device/{}/defer/{}", f.device_token, f.alpha.policy), &[("choice", "now".into())])
        }),
        row("GET", Root, "/assets/my-device.js", Public, none, |_, _, _| req("/assets/my-device.js")),
        row("GET", Root, "/assets/my-device.css", Public, none, |_, _, _| req("/assets/my-device.css")),
        // Operations.
        row("GET", Root, "/livez", Public, none, |_, _, _| req("/livez")),
        row("GET", Root, "/healthz", Public, none, |_, _, _| req("/healthz")),
        row("GET", Root, "/metrics", Public, none, |_, _, _| req("/metrics")),
        // The console: pages as each role, forms for session and CSRF.
        row("GET", Root, "/console", ConsolePage, none, |_, _, _| req("/console")),
        row("GET", Root, "/console/login", Public, none, |_, _, _| req("/console/login")),
        row("POST", Root, "/console/login", Public, none, |_, _, _| {
            form("/console/login", &[("email", "g-observer@herd.test".into()), ("password", PASSWORD.into())])
        })
        .ok(303, ""),
        row("POST", Root, "/console/logout", ConsoleForm, none, |_, _, _| form("/console/logout", &[]))
            .fresh(Fresh::Session)
            .ok(303, ""),
        row("GET", Root, "/console/password", ConsolePage, none, |_, _, _| req("/console/password")),
        // A wrong current password: the form is checked (session, CSRF, then the password), nothing changes.
        row("POST", Root, "/console/password", ConsoleForm, none, |_, _, _| {
            form(
                "/console/password",
                &[("old_password", "not-the-password-1!".into()), ("new_password", PASSWORD.into())],
            )
        })
        .ok(422, "current password is wrong"),
        row("GET", Root, "/console/hosts", ConsolePage, none, |_, _, _| req("/console/hosts")),
        row("GET", Root, "/console/hosts/{id}", Console(Read), Scopes, |o, _, _| {
            req(format!("/console/hosts/{}", o.host))
        }),
        row("GET", Root, "/console/hosts/{id}/my-device", Console(Read), Scopes, |o, _, _| {
            req(format!("/console/hosts/{}/my-device", o.host))
        }),
        row("POST", Root, "/console/hosts/{id}/action", ConsoleForm, Scopes, |o, _, _| {
            form(format!("/console/hosts/{}/action", o.host), &[("do", "refetch".into())])
        }),
        row("GET", Root, "/console/policies", ConsolePage, none, |_, _, _| req("/console/policies")),
        row("GET", Root, "/console/policies", Console(Read), Teams, |o, _, _| {
            req(format!("/console/policies?team_id={}", o.team_id()))
        }),
        row("GET", Root, "/console/policies/new", ConsolePage, none, |_, _, _| req("/console/policies/new")),
        row("POST", Root, "/console/policies/new", ConsoleForm, none, |_, _, n| {
            form("/console/policies/new", &[("name", format!("console {n}")), ("query", "SELECT 1;".into())])
        }),
        row("GET", Root, "/console/policies/{id}", Console(Read), Scopes, |o, _, _| {
            req(format!("/console/policies/{}", o.policy))
        }),
        row("POST", Root, "/console/policies/{id}", ConsoleForm, none, |o, _, _| {
            let fields = [
                ("name", "global policy".into()),
                ("query", "SELECT 1;".into()),
                ("webhook_url", GLOBAL_POLICY_HOOK.into()),
            ];
            form(format!("/console/policies/{}", o.policy), &fields)
        }),
        row("POST", Root, "/console/policies/{id}/delete", ConsoleForm, none, |_, _, _| {
            form(format!("/console/policies/{MISSING}/delete"), &[("confirm", "yes".into())])
        }),
        row("POST", Root, "/console/scripts/{id}/delete", ConsoleForm, none, |_, _, _| {
            form(format!("/console/scripts/{MISSING}/delete"), &[])
        }),
        row("POST", Root, "/console/profiles/{uuid}/delete", ConsoleForm, none, |_, _, _| {
            form("/console/profiles/no-such-profile/delete", &[])
        }),
        row("GET", Root, "/console/teams", ConsolePage, none, |_, _, _| req("/console/teams")),
        row("GET", Root, "/console/labels", ConsolePage, none, |_, _, _| req("/console/labels")),
        row("POST", Root, "/console/labels", ConsoleForm, none, |_, _, n| {
            form("/console/labels", &[("name", format!("console label {n}")), ("kind", "manual".into())])
        }),
        row("POST", Root, "/console/labels/{id}/delete", ConsoleForm, none, |o, _, _| {
            form(format!("/console/labels/{}/delete", o.label_id), &[])
        })
        .fresh(Fresh::Label),
        row("POST", Root, "/console/teams", ConsoleForm, none, |_, _, n| {
            form("/console/teams", &[("name", format!("console-{n}"))])
        }),
        row("GET", Root, "/console/scripts", ConsolePage, none, |_, _, _| req("/console/scripts")),
        row("POST", Root, "/console/scripts", ConsoleForm, none, |_, _, n| {
            form("/console/scripts", &[("name", format!("console-{n}.sh")), ("contents", "echo hi".into())])
        }),
        row("GET", Root, "/console/profiles", ConsolePage, none, |_, _, _| req("/console/profiles")),
        row("POST", Root, "/console/profiles", ConsoleForm, none, |_, _, n| {
            let doc = String::from_utf8(profile_doc(&format!("com.herd.console{n}"), &format!("console {n}"))).unwrap();
            form("/console/profiles", &[("file_name", "p.json".into()), ("contents", doc)])
        }),
        row("GET", Root, "/console/users", Console(AdministerServer), none, |_, _, _| req("/console/users")),
        row("POST", Root, "/console/users", ConsoleForm, none, |_, _, n| {
            let email = format!("console-{n}@herd.test");
            form(
                "/console/users",
                &[
                    ("name", email.clone()),
                    ("email", email),
                    ("password", PASSWORD.into()),
                    ("global_role", "observer".into()),
                ],
            )
        }),
        row("GET", Root, "/console/settings", Console(AdministerServer), none, |_, _, _| req("/console/settings")),
        row("POST", Root, "/console/settings", ConsoleForm, none, |_, _, _| {
            form(
                "/console/settings",
                &[
                    ("org_name", "Acme".into()),
                    ("contact_url", "".into()),
                    ("policy_interval", "3600".into()),
                    ("vitals_interval", "3600".into()),
                ],
            )
        }),
        row("GET", Root, "/console/activity", Console(Read), none, |_, _, _| req("/console/activity")),
        row("GET", Root, "/console/assets/console.css", Public, none, |_, _, _| req("/console/assets/console.css")),
        row("GET", Root, "/console/assets/console.js", Public, none, |_, _, _| req("/console/assets/console.js")),
    ]
}

/// Rows also sent under `/api/latest/fleet` (the alias shares the v1 handlers; one sample shows it also shares
/// their checks).
const LATEST_SAMPLES: &[&str] = &["/hosts/{id}", "/scripts/run"];

// ---------------------------------------------------------------------------------------------------------------
// Fixtures

/// The objects of one scope (or, for "nowhere", ids that do not exist).
#[derive(Clone, Debug)]
struct Objects {
    label: &'static str,
    target: Target,
    /// The scope's team (None: global).
    team: Option<i64>,
    team_name: String,
    secret: String,
    host: i64,
    identifier: String,
    script: i64,
    script_name: String,
    policy: i64,
    profile: String,
    profile_doc: Vec<u8>,
    execution: String,
    user: i64,
    /// A manual label (labels are global: every scope's is one more global label).
    label_id: i64,
    label_name: String,
}

impl Objects {
    fn team_id(&self) -> i64 {
        self.team.expect("a team row at a team")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Own,
    Other,
    Global,
    Missing,
}

struct Fixture {
    server: Server,
    client: reqwest::Client,
    admin: String,
    alpha: Objects,
    bravo: Objects,
    global: Objects,
    nowhere: Objects,
    victim: i64,
    node_key: String,
    /// The orbit (fleetd) node key of a machine enrolled with alpha's secret.
    orbit_node_key: String,
    node_keys: Vec<String>,
    device_token: String,
    users: Vec<Who>,
    counter: AtomicU64,
}

#[derive(Clone)]
struct Who {
    label: String,
    email: Option<String>,
    actor: Option<Actor>,
    token: Option<String>,
}

fn client_without_redirects(server: &Server) -> reqwest::Client {
    let cert = std::fs::read(server.data_dir.join("tls/cert.pem")).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn created_team(server: &Server, admin: &str, name: &str, secret: &str) -> i64 {
    let (status, team) =
        server.post("/api/v1/fleet/teams", admin, json!({"name": name, "secrets": [{"secret": secret}]})).await;
    assert_eq!(status, StatusCode::OK, "{team}");
    team["team"]["id"].as_i64().unwrap()
}

async fn enrolled_host(server: &Server, admin: &str, name: &str, secret: &str) -> (i64, String) {
    let mut host = TestHost::new(name);
    let (status, body) = host.enroll(server, secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, shown) = server.get(&format!("/api/v1/fleet/hosts/identifier/{name}"), admin).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    (shown["host"]["id"].as_i64().unwrap(), host.node_key)
}

async fn uploaded_script(server: &Server, admin: &str, name: &str, team: Option<i64>) -> i64 {
    let (status, reply) = server.upload("/api/v1/fleet/scripts", admin, "script", name, b"echo authz", team).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    reply["script_id"].as_i64().unwrap()
}

async fn created_policy(server: &Server, admin: &str, name: &str, team: Option<i64>) -> i64 {
    let path = match team {
        Some(t) => format!("/api/v1/fleet/teams/{t}/policies"),
        None => "/api/v1/fleet/global/policies".into(),
    };
    let (status, reply) = server.post(&path, admin, json!({"name": name, "query": "SELECT 1;"})).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    reply["policy"]["id"].as_i64().unwrap()
}

async fn uploaded_profile(server: &Server, admin: &str, doc: &[u8], team: Option<i64>) -> String {
    let (status, reply) = server.upload_profile(admin, "p.json", doc, team).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    reply["profile_uuid"].as_str().unwrap().to_string()
}

async fn created_label(server: &Server, admin: &str, name: &str) -> i64 {
    let (status, reply) = server.post("/api/v1/fleet/labels", admin, json!({"name": name, "host_ids": []})).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    reply["label"]["id"].as_i64().unwrap()
}

async fn created_user(server: &Server, admin: &str, email: &str) -> i64 {
    let body = json!({"name": email, "email": email, "password": PASSWORD, "global_role": "observer"});
    let (status, reply) = server.post("/api/v1/fleet/users/admin", admin, body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    reply["user"]["id"].as_i64().unwrap()
}

/// One scope's objects, created by the admin.
async fn scope_objects(
    server: &Server,
    admin: &str,
    label: &'static str,
    target: Target,
    team: Option<i64>,
    secret: &str,
) -> (Objects, String) {
    let (host, node_key) = enrolled_host(server, admin, &format!("host-{label}"), secret).await;
    let script_name = format!("{label}.sh");
    let script = uploaded_script(server, admin, &script_name, team).await;
    let policy = created_policy(server, admin, &format!("{label} policy"), team).await;
    let profile_doc = profile_doc(&format!("com.herd.{label}"), &format!("{label} profile"));
    let profile = uploaded_profile(server, admin, &profile_doc, team).await;
    let (status, run) =
        server.post("/api/v1/fleet/scripts/run", admin, json!({"host_id": host, "script_id": script})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let objects = Objects {
        label,
        target,
        team,
        team_name: if team.is_some() { label.to_string() } else { String::new() },
        secret: secret.to_string(),
        host,
        identifier: format!("host-{label}"),
        script,
        script_name,
        policy,
        profile,
        profile_doc,
        execution: run["execution_id"].as_str().unwrap().to_string(),
        user: 0,
        // Named without the scope's name: labels are global, every user lists them.
        label_id: created_label(server, admin, &format!("fixture label {}", target as u8)).await,
        label_name: format!("fixture label {}", target as u8),
    };
    (objects, node_key)
}

async fn fixture(server: Server) -> Fixture {
    let admin = server.admin_token().await;
    let alpha_team = created_team(&server, &admin, "alpha", "alpha-enroll-secret-0001").await;
    let bravo_team = created_team(&server, &admin, "bravo", "bravo-enroll-secret-0001").await;
    let (alpha, node_key) =
        scope_objects(&server, &admin, "alpha", Target::Own, Some(alpha_team), "alpha-enroll-secret-0001").await;
    let (bravo, bravo_key) =
        scope_objects(&server, &admin, "bravo", Target::Other, Some(bravo_team), "bravo-enroll-secret-0001").await;
    let (global, global_key) = scope_objects(&server, &admin, "global", Target::Global, None, ENROLL_SECRET).await;
    let nowhere = Objects {
        label: "nowhere",
        target: Target::Missing,
        team: Some(MISSING),
        team_name: "nowhere".into(),
        secret: "nowhere-enroll-secret-0001".into(),
        host: MISSING,
        identifier: "host-nowhere".into(),
        script: MISSING,
        script_name: "nowhere.sh".into(),
        policy: MISSING,
        profile: "00000000-0000-4000-8000-000000000000".into(),
        profile_doc: profile_doc("com.herd.nowhere", "nowhere profile"),
        execution: "no-such-execution".into(),
        user: MISSING,
        label_id: MISSING,
        label_name: "nowhere label".into(),
    };
    let victim = created_user(&server, &admin, "victim@herd.test").await;
    let device_token = "5d0a3c7e-9b21-4f68-a4c3-2e7f90b1d6a8".to_string();
    let (status, body) = server
        .osquery("/api/fleet/orbit/device_token", json!({"node_key": node_key, "device_auth_token": device_token}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let orbit = json!({"enroll_secret": "alpha-enroll-secret-0001", "hardware_uuid": "ORBIT-FIXTURE"});
    let (status, body) = server.osquery("/api/fleet/orbit/enroll", orbit).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let orbit_node_key = body["orbit_node_key"].as_str().unwrap().to_string();
    let patch = json!({"webhook_settings": {"failing_policies_webhook": {"destination_url": WEBHOOK_URL}}});
    let (status, body) = server.patch("/api/v1/fleet/config", &admin, patch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let hook = json!({"webhook_settings": {"failing_policies_webhook": {"destination_url": TEAM_HOOK}}});
    let (status, body) = server.patch(&format!("/api/v1/fleet/teams/{alpha_team}"), &admin, hook).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!("/api/v1/fleet/teams/{alpha_team}/policies/{}", alpha.policy);
    let (status, body) = server.patch(&path, &admin, json!({"webhook_url": ALPHA_POLICY_HOOK})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!("/api/v1/fleet/global/policies/{}", global.policy);
    let (status, body) = server.patch(&path, &admin, json!({"webhook_url": GLOBAL_POLICY_HOOK})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut users = vec![Who { label: "signed out".into(), email: None, actor: None, token: None }];
    for role in [Role::Observer, Role::Maintainer, Role::Admin] {
        for team in [None, Some(alpha_team)] {
            let prefix = if team.is_some() { "a" } else { "g" };
            let email = format!("{prefix}-{}@herd.test", role.as_str());
            let token = server.user_token(&admin, &email, role.as_str(), team).await;
            let actor = Actor {
                user_id: 0,
                global_role: team.is_none().then_some(role),
                team_roles: team.map(|t| vec![(t, role)]).unwrap_or_default(),
            };
            let label = format!("{} {}", if team.is_some() { "alpha" } else { "global" }, role.as_str());
            users.push(Who { label, email: Some(email), actor: Some(actor), token: Some(token) });
        }
    }
    let client = client_without_redirects(&server);
    Fixture {
        server,
        client,
        admin,
        alpha,
        bravo,
        global,
        nowhere,
        victim,
        node_keys: vec![node_key.clone(), bravo_key, global_key],
        node_key,
        orbit_node_key,
        device_token,
        users,
        counter: AtomicU64::new(1),
    }
}

impl Fixture {
    fn objects(&self, target: Target) -> &Objects {
        match target {
            Target::Own => &self.alpha,
            Target::Other => &self.bravo,
            Target::Global => &self.global,
            Target::Missing => &self.nowhere,
        }
    }

    /// `base` with a new object of the kind `fresh` names, in the same scope (missing objects stay missing).
    async fn fresh(&self, base: &Objects, fresh: Fresh, who: &Who, n: u64) -> (Objects, Option<String>) {
        let mut o = base.clone();
        let server = &self.server;
        let admin = &self.admin;
        let mut token = who.token.clone();
        if base.target == Target::Missing && fresh != Fresh::Session {
            return (o, token);
        }
        let label = base.label;
        match fresh {
            Fresh::No => {}
            Fresh::Host => o.host = enrolled_host(server, admin, &format!("{label}-fresh-{n}"), &o.secret).await.0,
            Fresh::Script => o.script = uploaded_script(server, admin, &format!("{label}-fresh-{n}.sh"), o.team).await,
            Fresh::Policy => o.policy = created_policy(server, admin, &format!("{label} fresh {n}"), o.team).await,
            Fresh::Profile => {
                let doc = profile_doc(&format!("com.herd.{label}.fresh{n}"), &format!("{label} fresh {n}"));
                o.profile = uploaded_profile(server, admin, &doc, o.team).await;
            }
            Fresh::Team => {
                let name = format!("{label}-fresh-{n}");
                o.team = Some(created_team(server, admin, &name, &format!("{label}-fresh-secret-{n:06}")).await);
                o.team_name = name;
            }
            Fresh::User => o.user = created_user(server, admin, &format!("fresh-{n}@herd.test")).await,
            Fresh::Label => {
                o.label_name = format!("fresh label {n}");
                o.label_id = created_label(server, admin, &o.label_name).await;
            }
            Fresh::Session => {
                if let Some(email) = &who.email {
                    token = Some(server.login(email, PASSWORD).await);
                }
            }
        }
        (o, token)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Sending and judging

#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    body: String,
    location: String,
}

impl Answer {
    /// What must be equal between an object the user cannot read and a missing one: the status and the error
    /// (message and field; the reason may echo the request's own words).
    fn shape(&self) -> (u16, String) {
        let error = serde_json::from_str::<Value>(&self.body)
            .map(|v| format!("{} / {}", v["message"], v["errors"][0]["name"]))
            .unwrap_or_default();
        (self.status, error)
    }
}

enum Credential<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str),
    NodeKey(&'a str),
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    path: &str,
    credential: Credential<'_>,
    body: &Body,
) -> Answer {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, format!("{url}{path}"));
    match credential {
        Credential::None => {}
        Credential::Bearer(token) => request = request.bearer_auth(token),
        Credential::Cookie(token) => request = request.header("cookie", format!("herd_console={token}")),
        Credential::NodeKey(key) => request = request.header("authorization", format!("NodeKey {key}")),
    }
    request = match body {
        Body::None => request,
        Body::Json(value) => request.json(value),
        Body::Upload(field, file_name, contents, team) => {
            let part = reqwest::multipart::Part::bytes(contents.clone()).file_name(file_name.clone());
            let mut form = reqwest::multipart::Form::new().part(field.to_string(), part);
            if let Some(team) = team {
                form = form.text("team_id", team.to_string());
            }
            request.multipart(form)
        }
        Body::Form(fields) => request.form(fields),
    };
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body = response.text().await.unwrap_or_default();
    Answer { status, body, location }
}

fn csrf_of(token: &str) -> String {
    use sha2::Digest;
    let hash = herd_server::secrets::token_hash(token);
    hex::encode(sha2::Sha256::digest(format!("herd-console-csrf:{hash}").as_bytes()))
}

fn scope_of(o: &Objects) -> Option<Scope> {
    match o.target {
        Target::Missing => None,
        _ => Some(Scope::of_team(o.team)),
    }
}

fn targets_of(targets: Targets) -> &'static [Target] {
    match targets {
        Targets::None => &[Target::Global],
        Scopes => &[Target::Own, Target::Other, Target::Global, Target::Missing],
        Teams => &[Target::Own, Target::Other, Target::Missing],
        OtherTeams => &[Target::Other, Target::Missing],
    }
}

/// One request of the matrix and its answer.
struct Case {
    row: usize,
    prefix: &'static str,
    who: usize,
    target: Target,
    /// The scope the request acted in (None: a missing object).
    scope: Option<Scope>,
    answer: Answer,
    /// The same request with agent credentials instead of the user's (REST rows), or with a user's bearer token
    /// instead of the agent's (agent rows), or with a bad device token (device rows).
    crossed: Option<Answer>,
}

fn is_success(row: &Row, answer: &Answer) -> bool {
    match row.ok {
        Some((status, text)) => answer.status == status && answer.body.contains(text),
        None => (200..300).contains(&answer.status),
    }
}

fn is_login_redirect(answer: &Answer) -> bool {
    answer.status == 303 && answer.location.starts_with("/console/login")
}

/// The failures of one case (the missing-object answer of the same row and user is `reference`).
fn judge(fx: &Fixture, rows: &[Row], case: &Case, reference: Option<&Answer>) -> Vec<String> {
    let row = &rows[case.row];
    let who = &fx.users[case.who];
    let a = &case.answer;
    let mut failures = Vec::new();
    let mut fail = |what: String| {
        let body: String = a.body.chars().take(300).collect();
        failures.push(format!(
            "{} {}{} as {} at {:?}: {what} (got {} {body})",
            row.method, case.prefix, row.route, who.label, case.target, a.status
        ))
    };
    let answered = (200..400).contains(&a.status);
    // Nothing of bravo reaches a user who cannot read bravo.
    let reads_bravo = who.actor.as_ref().is_some_and(|actor| actor.may(Read, Scope::Team(fx.bravo.team_id())));
    if answered && !reads_bravo && a.body.contains("bravo") {
        fail("shows another team's objects".into());
    }
    // Webhook URLs (often carrying a token) only for those who may change them.
    let alpha = Scope::Team(fx.alpha.team_id());
    let secrets = [
        ("T0KEN-config", AdministerServer, Scope::Global),
        ("T0KEN-team", AdministerTeam, alpha),
        ("T0KEN-alpha-policy", Write, alpha),
        ("T0KEN-global-policy", Write, Scope::Global),
    ];
    for (marker, action, scope) in secrets {
        let may = who.actor.as_ref().is_some_and(|actor| actor.may(action, scope));
        if answered && !may && a.body.contains(marker) {
            fail(format!("shows a webhook URL ({marker}) to a user who may not change it"));
        }
    }
    let same_as_missing = reference.is_none_or(|r| r.shape() == a.shape());
    let hidden_as_missing = |scope: Scope, fail: &mut dyn FnMut(String)| {
        // The global scope always exists: refusing it (403) or not finding its objects (as missing ones) tells
        // nothing. A team's objects must answer exactly as missing ones.
        if !(same_as_missing || (scope == Scope::Global && a.status == 403)) {
            fail(format!("existence leak: a missing one answers {:?}", reference.map(Answer::shape)));
        }
    };
    let expect_same_scope = |action: Action, actor: &Actor, fail: &mut dyn FnMut(String)| {
        let Some(scope) = case.scope else {
            return;
        };
        let own = Scope::Team(fx.alpha.team_id());
        if case.target == Target::Own && actor.may(action, own) {
            if !is_success(row, a) {
                fail(format!("the role table allows {action:?} here"));
            }
        } else if (200..300).contains(&a.status) {
            fail("another scope's object, or a role without the right".into());
        } else if !actor.may(Read, scope) {
            hidden_as_missing(scope, fail);
        }
    };
    let expect_by_role = |action: Action, actor: &Actor, fail: &mut dyn FnMut(String)| {
        let Some(scope) = case.scope else {
            return;
        };
        if actor.may(action, scope) {
            if !is_success(row, a) {
                fail(format!("the role table allows {action:?} here"));
            }
        } else if (200..300).contains(&a.status) || is_success(row, a) {
            fail(format!("the role table forbids {action:?} here"));
        } else if !actor.may(Read, scope) {
            hidden_as_missing(scope, fail);
        } else if a.status != 403 {
            fail("readable but not allowed must be 403".into());
        }
    };
    match (row.need, &who.actor) {
        (Need::Public, _) => {
            if !is_success(row, a) {
                fail("public route refused".into());
            }
        }
        (Need::AnyUser | Need::On(_) | Need::SameScope(_), None) => {
            if a.status != 401 {
                fail("no credentials must be 401".into());
            }
        }
        (Need::AnyUser, Some(_)) | (Need::ConsolePage, Some(_)) => {
            if !is_success(row, a) {
                fail("any signed-in user may".into());
            }
        }
        (Need::On(action), Some(actor)) | (Need::Console(action), Some(actor)) => {
            expect_by_role(action, actor, &mut fail)
        }
        (Need::SameScope(action), Some(actor)) => expect_same_scope(action, actor, &mut fail),
        (Need::Console(_) | Need::ConsolePage | Need::ConsoleForm, None) => {
            if !is_login_redirect(a) {
                fail("signed out must go to the login page".into());
            }
        }
        (Need::ConsoleForm, Some(_)) if row.ok.is_some() => {
            if !is_success(row, a) {
                fail("a signed-in form with its CSRF token was refused".into());
            }
        }
        (Need::ConsoleForm, Some(_)) => {
            if is_login_redirect(a) || a.status == 401 || a.status == 403 && a.body.contains("Form expired") {
                fail("a signed-in form with its CSRF token was refused".into());
            }
        }
        (Need::Agent, _) => {
            if !is_success(row, a) {
                fail("a good node key (or enroll secret) must work".into());
            }
        }
        (Need::Device, _) => {
            if a.status == 401 || a.status == 429 {
                fail("a good device token must work".into());
            }
        }
    }
    if let Some(crossed) = &case.crossed {
        let refused = match row.need {
            Need::Agent => !(200..300).contains(&crossed.status),
            Need::Device | Need::AnyUser | Need::On(_) | Need::SameScope(_) => crossed.status == 401,
            Need::ConsoleForm => crossed.status == 403 && crossed.body.contains("Form expired"),
            Need::Console(_) | Need::ConsolePage | Need::Public => true,
        };
        if !refused {
            failures.push(format!(
                "{} {}{} as {}: the wrong credential was not refused ({} {})",
                row.method,
                case.prefix,
                row.route,
                who.label,
                crossed.status,
                crossed.body.chars().take(200).collect::<String>()
            ));
        }
    }
    failures
}

/// An agent request with a user's session token where the agent's credential goes.
fn with_user_token(body: &Body, token: &str) -> Body {
    match body {
        Body::Json(Value::Object(map)) => {
            let mut map = map.clone();
            for key in ["node_key", "orbit_node_key", "enroll_secret"] {
                if map.contains_key(key) {
                    map.insert(key.into(), json!(token));
                }
            }
            Body::Json(Value::Object(map))
        }
        _ => Body::Json(json!({"node_key": token})),
    }
}

async fn run_case(fx: Arc<Fixture>, row_index: usize, prefix: &'static str, who_index: usize, target: Target) -> Case {
    let rows = rows();
    let row = &rows[row_index];
    let who = &fx.users[who_index];
    let n = fx.counter.fetch_add(1, Ordering::Relaxed);
    let (objects, token) = fx.fresh(fx.objects(target), row.fresh, who, n).await;
    let request = (row.build)(&objects, &fx, n);
    let path = format!("{prefix}{}", request.path);
    let url = &fx.server.url;
    let mut body = request.body;
    let token = token.as_deref();
    let credential = match (row.need, token) {
        (Need::Console(_) | Need::ConsolePage | Need::ConsoleForm, Some(token)) => Credential::Cookie(token),
        (_, Some(token)) => Credential::Bearer(token),
        (_, None) => Credential::None,
    };
    let mut crossed = None;
    let client = &fx.client;
    match row.need {
        // A user endpoint with the host's node key instead: refused.
        Need::AnyUser | Need::On(_) | Need::SameScope(_) if who.actor.is_some() && target != Target::Missing => {
            crossed = Some(send(client, url, row.method, &path, Credential::NodeKey(&fx.node_key), &body).await);
        }
        // An agent endpoint with a user's token (as bearer and as the node key or secret): refused.
        Need::Agent if who.actor.is_some() => {
            let token = token.unwrap();
            let as_user = with_user_token(&body, token);
            crossed = Some(send(client, url, row.method, &path, Credential::Bearer(token), &as_user).await);
        }
        // A device endpoint with a bad token (once: bad tokens count against the address's budget).
        Need::Device if who.actor.is_none() => {
            let bad = path.replace(&fx.device_token, "not-a-device-token-00000");
            crossed = Some(send(client, url, row.method, &bad, Credential::None, &body).await);
        }
        // A form without its CSRF token: refused.
        Need::ConsoleForm if who.actor.is_some() => {
            crossed = Some(send(client, url, row.method, &path, Credential::Cookie(token.unwrap()), &body).await);
        }
        _ => {}
    }
    if let (Body::Form(fields), Some(token)) = (&mut body, token)
        && matches!(row.need, Need::ConsoleForm | Need::Console(_) | Need::ConsolePage)
    {
        fields.push(("csrf".into(), csrf_of(token)));
    }
    let answer = send(&fx.client, url, row.method, &path, credential, &body).await;
    Case { row: row_index, prefix, who: who_index, target, scope: scope_of(&objects), answer, crossed }
}

async fn authorization_matrix(server: Server) {
    let fx = Arc::new(fixture(server).await);
    let rows = rows();

    // Exhaustive: every route the server answers has a row, and every row a route.
    let mut declared: BTreeSet<(String, String)> = BTreeSet::new();
    for row in &rows {
        let paths: Vec<String> = match row.surface {
            Fleet => vec![format!("/api/v1/fleet{}", row.route), format!("/api/latest/fleet{}", row.route)],
            FleetV1 => vec![format!("/api/v1/fleet{}", row.route)],
            FleetLatest => vec![format!("/api/latest/fleet{}", row.route)],
            Root => vec![row.route.to_string()],
        };
        for path in paths {
            declared.insert((row.method.to_string(), path));
        }
    }
    let mut served: BTreeSet<(String, String)> = BTreeSet::new();
    for path in herd_server::api::route_table() {
        // Any value matches a `{param}` segment; TRACE is routed nowhere, so axum answers 405 with `Allow`.
        let concrete: String =
            path.split('/').map(|s| if s.starts_with('{') { "x" } else { s }).collect::<Vec<_>>().join("/");
        let response = fx.client.request(Method::TRACE, format!("{}{concrete}", fx.server.url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}: TRACE must be 405");
        let allow = response.headers().get("allow").expect("405 carries Allow").to_str().unwrap().to_string();
        for method in allow.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            // axum answers HEAD wherever GET is routed.
            if method == "HEAD" && allow.contains("GET") {
                continue;
            }
            served.insert((method.to_string(), path.clone()));
        }
    }
    let unlisted: Vec<_> = served.difference(&declared).collect();
    let unrouted: Vec<_> = declared.difference(&served).collect();
    assert!(unlisted.is_empty(), "routes without a row in the authorization table: {unlisted:#?}");
    assert!(unrouted.is_empty(), "rows for routes the server does not have: {unrouted:#?}");

    // The hosts' agents, with scripts turned off: fetching their runs finishes them (as errors), so synchronous
    // runs end.
    let stop = Arc::new(AtomicBool::new(false));
    let agents = {
        let fx = fx.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for key in &fx.node_keys {
                    let body = json!({"node_key": key, "scripts_enabled": false});
                    let (status, reply) = fx.server.osquery("/api/fleet/orbit/scripts/pending", body).await;
                    assert_eq!(status, StatusCode::OK, "{reply}");
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
    };

    let mut plan = Vec::new();
    let mut serial = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let mut prefixes: Vec<&'static str> = match row.surface {
            Fleet | FleetV1 => vec!["/api/v1/fleet"],
            FleetLatest => vec!["/api/latest/fleet"],
            Root => vec![""],
        };
        if row.surface == Fleet && LATEST_SAMPLES.contains(&row.route) {
            prefixes.push("/api/latest/fleet");
        }
        for prefix in prefixes {
            for &target in targets_of(row.targets) {
                for who in 0..fx.users.len() {
                    if row.serial {
                        serial.push((index, prefix, who, target))
                    } else {
                        plan.push((index, prefix, who, target))
                    }
                }
            }
        }
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(12));
    let mut tasks = tokio::task::JoinSet::new();
    for (row, prefix, who, target) in plan {
        let fx = fx.clone();
        let permit = limit.clone().acquire_owned().await.unwrap();
        tasks.spawn(async move {
            let case = run_case(fx, row, prefix, who, target).await;
            drop(permit);
            case
        });
    }
    let mut cases = Vec::new();
    while let Some(case) = tasks.join_next().await {
        cases.push(case.expect("a case"));
    }
    for (row, prefix, who, target) in serial {
        cases.push(run_case(fx.clone(), row, prefix, who, target).await);
    }
    stop.store(true, Ordering::Relaxed);
    agents.await.unwrap();

    let references: BTreeMap<(usize, &str, usize), Answer> = cases
        .iter()
        .filter(|c| c.target == Target::Missing)
        .map(|c| ((c.row, c.prefix, c.who), c.answer.clone()))
        .collect();
    let mut failures = Vec::new();
    for case in &cases {
        let reference = references.get(&(case.row, case.prefix, case.who));
        failures.extend(judge(&fx, &rows, case, reference));
    }
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {} requests broke the rules:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The defects of issue 16, one case each

/// Teams alpha and bravo (with enroll secrets), a host in alpha, and scripts a.sh (alpha), b.sh (bravo) and
/// g.sh (global).
struct TwoTeams {
    admin: String,
    alpha: i64,
    bravo: i64,
    alpha_host: i64,
    bravo_host: i64,
    scripts: BTreeMap<&'static str, i64>,
}

async fn two_teams(server: &Server) -> TwoTeams {
    let admin = server.admin_token().await;
    let alpha = created_team(server, &admin, "alpha", "alpha-enroll-secret-0001").await;
    let bravo = created_team(server, &admin, "bravo", "bravo-enroll-secret-0001").await;
    let (alpha_host, _) = enrolled_host(server, &admin, "host-alpha", "alpha-enroll-secret-0001").await;
    let (bravo_host, _) = enrolled_host(server, &admin, "host-bravo", "bravo-enroll-secret-0001").await;
    let mut scripts = BTreeMap::new();
    for (name, team) in [("a.sh", Some(alpha)), ("b.sh", Some(bravo)), ("g.sh", None)] {
        scripts.insert(name, uploaded_script(server, &admin, name, team).await);
    }
    TwoTeams { admin, alpha, bravo, alpha_host, bravo_host, scripts }
}

fn error_field(body: &Value) -> &str {
    body["errors"][0]["name"].as_str().unwrap_or_default()
}

/// Issue 16: a team maintainer could run another team's (or a global) script on their own host by naming it,
/// and then read its contents in the result. A script runs only on hosts of its own scope, found by name or
/// by id through the same scope-checked lookup.
async fn team_maintainers_cannot_run_other_scopes_scripts(server: Server) {
    let t = two_teams(&server).await;
    let maintainer = server.user_token(&t.admin, "a-maintainer@herd.test", "maintainer", Some(t.alpha)).await;
    let run = |body: Value| {
        let server = &server;
        let token = maintainer.clone();
        async move { server.post("/api/v1/fleet/scripts/run", &token, body).await }
    };
    for (name, team) in [("b.sh", json!(t.bravo)), ("g.sh", Value::Null), ("g.sh", json!(0))] {
        let (status, body) = run(json!({"host_id": t.alpha_host, "script_name": name, "team_id": team})).await;
        assert_eq!((status, error_field(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "script_name"), "{name}: {body}");
    }
    for name in ["b.sh", "g.sh"] {
        let (status, body) = run(json!({"host_id": t.alpha_host, "script_id": t.scripts[name]})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name} by id: {body}");
    }
    // Their own team's script, by name or id: queued, and its result shows their own script.
    let (status, queued) = run(json!({"host_id": t.alpha_host, "script_name": "a.sh", "team_id": t.alpha})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let path = format!("/api/v1/fleet/scripts/results/{}", queued["execution_id"].as_str().unwrap());
    let (status, result) = server.get(&path, &maintainer).await;
    assert_eq!((status, result["script_contents"].as_str()), (StatusCode::OK, Some("echo authz")), "{result}");
    // A global maintainer may read every script, but a script still runs only in its own scope.
    let global = server.user_token(&t.admin, "g-maintainer@herd.test", "maintainer", None).await;
    for body in [
        json!({"host_id": t.alpha_host, "script_id": t.scripts["g.sh"]}),
        json!({"host_id": t.alpha_host, "script_id": t.scripts["b.sh"]}),
        json!({"host_id": t.bravo_host, "script_name": "a.sh", "team_id": t.alpha}),
    ] {
        let (status, reply) = server.post("/api/v1/fleet/scripts/run", &global, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {reply}");
    }
}

/// Issue 16: every user could read the whole configuration, webhook URLs (and their tokens) included. As in
/// Fleet, everyone reads it, but only global admins see agent options; herd also masks webhook URLs for
/// everyone but global admins, who alone may change them.
async fn configuration_is_reduced_for_all_but_global_admins(server: Server) {
    let t = two_teams(&server).await;
    let migration_url = "https://migrate.example.test/hook?token=T0KEN-migration";
    let patch = json!({
        "webhook_settings": {"failing_policies_webhook": {"destination_url": WEBHOOK_URL}},
        "mdm": {"macos_migration": {"enable": true, "mode": "voluntary", "webhook_url": migration_url}},
        "org_info": {"org_name": "Acme"},
    });
    let (status, body) = server.patch("/api/v1/fleet/config", &t.admin, patch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, full) = server.get("/api/v1/fleet/config", &t.admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(full["webhook_settings"]["failing_policies_webhook"]["destination_url"], WEBHOOK_URL);
    assert_eq!(full["mdm"]["macos_migration"]["webhook_url"], migration_url);
    assert!(full["agent_options"].is_object(), "{full}");
    let mut readers = Vec::new();
    for (email, role, team) in [
        ("g-maintainer@herd.test", "maintainer", None),
        ("g-observer@herd.test", "observer", None),
        ("a-admin@herd.test", "admin", Some(t.alpha)),
        ("a-observer@herd.test", "observer", Some(t.alpha)),
    ] {
        readers.push((email, server.user_token(&t.admin, email, role, team).await));
    }
    // Saving the console's settings form (which always carries the webhook settings) records an activity
    // that every global user reads: the URLs stay out of it.
    let client = client_without_redirects(&server);
    let settings_form = [
        ("org_name", "Acme".to_string()),
        ("contact_url", String::new()),
        ("policy_interval", "3600".into()),
        ("vitals_interval", "3600".into()),
        ("webhook_settings", full["webhook_settings"].to_string()),
        ("mdm", full["mdm"].to_string()),
        ("csrf", csrf_of(&t.admin)),
    ];
    let response = client
        .post(format!("{}/console/settings", server.url))
        .header("cookie", format!("herd_console={}", t.admin))
        .form(&settings_form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (status, feed) = server.get("/api/v1/fleet/activities", &readers[1].1).await;
    assert_eq!(status, StatusCode::OK);
    assert!(feed.to_string().contains("edited_settings"), "{feed}");
    assert!(!feed.to_string().contains("T0KEN"), "{feed}");
    for (email, token) in readers {
        let (status, view) = server.get("/api/v1/fleet/config", &token).await;
        assert_eq!(status, StatusCode::OK, "{email}: {view}");
        assert_eq!(view["org_info"]["org_name"], "Acme", "{email}");
        assert_eq!(view["webhook_settings"]["failing_policies_webhook"]["destination_url"], "********", "{email}");
        assert_eq!(view["mdm"]["macos_migration"]["webhook_url"], "********", "{email}");
        assert!(view["agent_options"].is_null(), "{email}: {view}");
        assert!(!view.to_string().contains("T0KEN"), "{email}: {view}");
        // And they still may not change it.
        let (status, _) = server.patch("/api/v1/fleet/config", &token, json!({"org_info": {"org_name": "x"}})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{email}");
    }
}

/// Issue 16: team names and ids of other teams could be probed (403 for an existing team, 422 or 404 for a
/// missing one) in batch and by-name endpoints; another team's hosts could be told apart from missing ones by
/// the transfer endpoint; and the console's activity feed showed every team's activity to team users.
async fn other_teams_cannot_be_probed_by_name_or_id(server: Server) {
    let t = two_teams(&server).await;
    let bravo_policy = created_policy(&server, &t.admin, "bravo policy", Some(t.bravo)).await;
    let admin = server.user_token(&t.admin, "a-admin@herd.test", "admin", Some(t.alpha)).await;
    let same = |what: &str, existing: (StatusCode, Value), missing: (StatusCode, Value), status: StatusCode| {
        assert_eq!(existing.0, status, "{what}, another team's: {}", existing.1);
        assert_eq!(missing.0, status, "{what}, a missing one: {}", missing.1);
        assert_eq!(existing.1["message"], missing.1["message"], "{what}");
        assert_eq!(error_field(&existing.1), error_field(&missing.1), "{what}");
    };
    let spec = |team: &str| json!({"specs": [{"name": "probe", "query": "SELECT 1;", "team": team}]});
    same(
        "policy specs by team name",
        server.post("/api/v1/fleet/spec/policies", &admin, spec("bravo")).await,
        server.post("/api/v1/fleet/spec/policies", &admin, spec("nope")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    let batch = json!({"profiles": []});
    same(
        "profile batch by team name",
        server.post("/api/v1/fleet/mdm/profiles/batch?team_name=bravo", &admin, batch.clone()).await,
        server.post("/api/v1/fleet/mdm/profiles/batch?team_name=nope", &admin, batch).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    same(
        "automation reset by policy id",
        server.post("/api/v1/fleet/automations/reset", &admin, json!({"policy_ids": [bravo_policy]})).await,
        server.post("/api/v1/fleet/automations/reset", &admin, json!({"policy_ids": [MISSING]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
    for path in ["/teams/{}", "/teams/{}/policies", "/teams/{}/policies/count", "/teams/{}/secrets"] {
        same(
            path,
            server.get(&format!("/api/v1/fleet{}", path.replace("{}", &t.bravo.to_string())), &admin).await,
            server.get(&format!("/api/v1/fleet{}", path.replace("{}", &MISSING.to_string())), &admin).await,
            StatusCode::NOT_FOUND,
        );
    }
    // Moving another team's host: ignored like a missing one (and it stays where it was).
    let transfer = |host: i64| json!({"team_id": t.alpha, "hosts": [host]});
    same(
        "host transfer",
        server.post("/api/v1/fleet/hosts/transfer", &admin, transfer(t.bravo_host)).await,
        server.post("/api/v1/fleet/hosts/transfer", &admin, transfer(MISSING)).await,
        StatusCode::OK,
    );
    let (_, host) = server.get(&format!("/api/v1/fleet/hosts/{}", t.bravo_host), &t.admin).await;
    assert_eq!(host["host"]["team_id"], t.bravo, "{host}");
    // The console's activity feed is for global users, as `GET /activities`.
    let client = client_without_redirects(&server);
    let response = client
        .get(format!("{}/console/activity", server.url))
        .header("cookie", format!("herd_console={admin}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!response.text().await.unwrap().contains("bravo"));
}
