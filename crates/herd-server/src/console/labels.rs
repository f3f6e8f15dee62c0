//! Labels: the list (kind, what decides membership, members counted and linked to the hosts page), creating a
//! label of any kind, deleting one (forced when policies or profiles use it).

use super::forms::{present, text_file};
use super::layout::{Frame, page_or_error, render};
use super::{ConsoleUser, done_or_error};
use crate::state::SharedState;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use herd_core::roles::{Action, Scope};
use herd_proto::fleet::LabelInput;
use herd_store::LabelRecord;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "console/labels.html")]
struct LabelsPage<'a> {
    frame: Frame<'a>,
    labels: Vec<LabelRecord>,
    may_write: bool,
}

impl LabelsPage<'_> {
    /// What decides a label's members, as one line.
    fn rule(label: &LabelRecord) -> String {
        match label.kind {
            herd_core::labels::LabelKind::Dynamic => label.query.clone(),
            herd_core::labels::LabelKind::Manual => "chosen hosts".into(),
            herd_core::labels::LabelKind::Criteria => label.criteria.clone().unwrap_or_default(),
        }
    }

    fn kind(label: &LabelRecord) -> &'static str {
        match label.kind {
            herd_core::labels::LabelKind::Dynamic => "Dynamic (query)",
            herd_core::labels::LabelKind::Manual => "Manual",
            herd_core::labels::LabelKind::Criteria => "Criteria",
        }
    }

    fn delete_action(label: &LabelRecord) -> String {
        format!("/console/labels/{}/delete", label.id)
    }
}

pub async fn page(State(state): State<SharedState>, user: ConsoleUser) -> Response {
    page_or_error(
        async {
            let labels = crate::app::labels::list(&state, &user.auth).await?;
            let page = LabelsPage {
                frame: Frame::new(&user, "/console/labels", "Labels"),
                labels,
                may_write: user.auth.actor.may(Action::Write, Scope::Global),
            };
            Ok(render(&page))
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct LabelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    /// dynamic, manual or criteria.
    #[serde(default)]
    kind: String,
    #[serde(default, deserialize_with = "text_file")]
    query: String,
    #[serde(default)]
    platform: String,
    /// A manual label's hosts: hostnames, serials, uuids or ids, one per line or comma-separated.
    #[serde(default, deserialize_with = "text_file")]
    hosts: String,
    #[serde(default, deserialize_with = "text_file")]
    criteria: String,
}

/// Creates a label with the REST API's own use case and checks (the kind picks which field counts).
pub async fn create(
    State(state): State<SharedState>,
    user: ConsoleUser,
    axum::Form(form): axum::Form<LabelForm>,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form.csrf) {
        return refused;
    }
    let mut input = LabelInput {
        name: form.name,
        description: Some(form.description),
        platform: Some(form.platform),
        ..LabelInput::default()
    };
    let result = async {
        match form.kind.as_str() {
            "dynamic" => input.query = Some(form.query),
            "manual" => {
                let hosts = form.hosts.split([',', '\n']).map(str::trim).filter(|h| !h.is_empty());
                input.hosts = Some(hosts.map(str::to_string).collect());
            }
            "criteria" => {
                let value = serde_json::from_str(&form.criteria)
                    .map_err(|e| crate::error::ApiError::invalid("criteria", format!("not JSON: {e}")))?;
                input.criteria = Some(value);
            }
            other => return Err(crate::error::ApiError::invalid("kind", format!("unknown kind {other:?}"))),
        }
        crate::app::labels::create(&state, &user.auth, input).await.map(|_| ())
    }
    .await;
    done_or_error(result, "/console/labels")
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
    /// Delete even when policies or profiles use it.
    #[serde(default, deserialize_with = "present")]
    force: bool,
}

pub async fn delete(
    State(state): State<SharedState>,
    user: ConsoleUser,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::Form(form): axum::Form<DeleteForm>,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form.csrf) {
        return refused;
    }
    let result = async {
        let id: i64 = id.parse().map_err(|_| crate::error::ApiError::NotFound("label"))?;
        crate::app::labels::delete(&state, &user.auth, id, form.force).await
    }
    .await;
    done_or_error(result, "/console/labels")
}
