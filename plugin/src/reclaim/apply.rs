//! Applying a plan: `assignLicense` calls through `$batch`, sequential per user and parallel
//! across users, with every outcome recorded as it happens.

use std::collections::VecDeque;

use serde_json::json;

use super::plan::{Action, Mode, Outcome, Skus, UserPlan, UserState, assigned};
use super::report::{ENTITY, user_entry};
use super::{ASSIGN_LICENSE, permission_error};
use crate::error::{ConnectorError, Result};
use crate::graph::{BatchCall, BatchReply, Graph};
use crate::host::{Level, Method};

/// What one reply means for the rest of the user's queue.
enum Next {
    Continue,
    /// Graph refused a call for several SKUs: try them one by one to learn which failed.
    Split,
    /// Nothing more can be done for this user.
    Stop,
    /// The application may not change licences: stop everything.
    Denied(String),
}

/// Applies every planned action. Fails only when nothing was changed (a permission refusal on
/// the first calls); once the tenant changed, every outcome goes into the report instead.
pub(crate) fn apply(graph: &mut Graph, skus: &Skus, plans: &mut [UserPlan]) -> Result<()> {
    let host = graph.host();
    let mut queues: Vec<VecDeque<Vec<usize>>> = plans
        .iter()
        .map(|plan| {
            let pending: Vec<usize> = (0..plan.actions.len())
                .filter(|&i| plan.actions[i].outcome == Outcome::Planned)
                .collect();
            if plan.state == UserState::Planned && !pending.is_empty() {
                VecDeque::from([pending])
            } else {
                VecDeque::new()
            }
        })
        .collect();
    let mut changed = false;
    loop {
        let round: Vec<usize> = (0..plans.len())
            .filter(|&u| !queues[u].is_empty())
            .collect();
        if round.is_empty() {
            return Ok(());
        }
        let calls: Vec<BatchCall> = round
            .iter()
            .map(|&u| call_for(&plans[u], &queues[u][0]))
            .collect();
        let replies = graph.batch(&calls, &ASSIGN_LICENSE);
        let mut denied = None;
        let mut finished = Vec::new();
        for (&u, reply) in round.iter().zip(replies) {
            let call = queues[u]
                .pop_front()
                .expect("a user in the round has a call");
            match settle(&mut plans[u], &call, reply) {
                Next::Continue => {}
                Next::Split => {
                    for &single in call.iter().rev() {
                        queues[u].push_front(vec![single]);
                    }
                }
                Next::Stop => queues[u].clear(),
                Next::Denied(message) => denied = Some(message),
            }
            changed |= call.iter().any(|&i| {
                matches!(
                    plans[u].actions[i].outcome,
                    Outcome::Removed | Outcome::Restored
                )
            });
            if queues[u].is_empty() {
                finished.push(u);
            }
        }
        if let Some(message) = denied {
            if !changed {
                return Err(permission_error(&format!(
                    "Microsoft Graph refused the change ({message}); nothing was changed"
                )));
            }
            for (u, queue) in queues.iter_mut().enumerate() {
                for i in queue.drain(..).flatten() {
                    let action = &mut plans[u].actions[i];
                    if action.outcome == Outcome::Planned {
                        action.outcome = Outcome::NotAttempted;
                        action.reason = Some("permission");
                        action.detail = Some(format!(
                            "not attempted: Graph refused the change ({message})"
                        ));
                    }
                }
                if !finished.contains(&u)
                    && plans[u]
                        .actions
                        .iter()
                        .any(|a| a.reason == Some("permission"))
                {
                    finished.push(u);
                }
            }
        }
        // The audit trail: each finished user's outcome is handed to the host as it happens,
        // so a run that dies later still leaves a record of what it changed.
        let records: Vec<String> = finished
            .iter()
            .map(|&u| user_entry(&plans[u], skus).to_string())
            .collect();
        if !records.is_empty()
            && let Err(e) = host.emit(ENTITY, records)
        {
            host.log(
                Level::Error,
                &format!("reclaim: the host refused the outcome records ({e}); stopping before any further change"),
            );
            stop_all(
                plans,
                &mut queues,
                &format!("not attempted: the host refused the audit record ({e})"),
            );
            // Once the tenant changed, the report (which lists every outcome) is the answer.
            return if changed {
                Ok(())
            } else {
                Err(ConnectorError::Cancelled(format!(
                    "the host refused `{ENTITY}` records: {e}"
                )))
            };
        }
    }
}

fn stop_all(plans: &mut [UserPlan], queues: &mut [VecDeque<Vec<usize>>], detail: &str) {
    for (u, queue) in queues.iter_mut().enumerate() {
        for i in queue.drain(..).flatten() {
            let action = &mut plans[u].actions[i];
            action.outcome = Outcome::NotAttempted;
            action.reason = Some("stopped");
            action.detail = Some(detail.to_string());
        }
    }
}

fn call_for(plan: &UserPlan, actions: &[usize]) -> BatchCall {
    let id = plan
        .holder
        .as_ref()
        .map(|h| h.id.clone())
        .unwrap_or_default();
    let chosen: Vec<&Action> = actions.iter().map(|&i| &plan.actions[i]).collect();
    let body = match plan.mode {
        Mode::Remove => json!({
            "addLicenses": [],
            "removeLicenses": chosen.iter().map(|a| a.sku_id.as_str()).collect::<Vec<_>>(),
        }),
        Mode::Restore => json!({
            "addLicenses": chosen
                .iter()
                .map(|a| json!({"skuId": a.sku_id, "disabledPlans": a.disabled_plans}))
                .collect::<Vec<_>>(),
            "removeLicenses": [],
        }),
    };
    BatchCall {
        method: Method::Post,
        url: format!("/users/{}/assignLicense", super::plan::encode_segment(&id)),
        body: Some(body),
    }
}

/// Records what a reply means for the actions of `call`.
fn settle(plan: &mut UserPlan, call: &[usize], reply: Result<BatchReply>) -> Next {
    let mut set = |outcome: Outcome, reason: Option<&'static str>, detail: Option<String>| {
        for &i in call {
            let action = &mut plan.actions[i];
            action.outcome = outcome;
            action.reason = reason;
            action.detail = detail.clone();
        }
    };
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => {
            set(
                Outcome::Failed,
                Some("request-failed"),
                Some(format!(
                    "{e}; the change may or may not have been applied: run the same reclaim again, it is idempotent"
                )),
            );
            return Next::Stop;
        }
    };
    let (code, message) = reply.error().unwrap_or_default();
    let graph_said = format!("{code}: {message}");
    match reply.status {
        200..=299 => {
            let done = match plan.mode {
                Mode::Remove => Outcome::Removed,
                Mode::Restore => Outcome::Restored,
            };
            set(done, None, None);
            if let Some(after) = assigned(&reply.body) {
                plan.after = Some(after);
            }
            Next::Continue
        }
        404 => {
            set(
                Outcome::Failed,
                Some("user-not-found"),
                Some(format!("the user no longer exists ({graph_said})")),
            );
            Next::Stop
        }
        401 | 403 => {
            set(
                Outcome::Failed,
                Some("permission"),
                Some(format!(
                    "{graph_said}; grant one of {}",
                    ASSIGN_LICENSE.permissions.join(", ")
                )),
            );
            Next::Denied(graph_said)
        }
        400 if call.len() > 1 => Next::Split,
        400 => {
            let (outcome, reason, hint) = classify(plan.mode, &message);
            set(
                outcome,
                Some(reason),
                Some(format!("{hint} ({graph_said})")),
            );
            Next::Continue
        }
        429 => {
            set(
                Outcome::Failed,
                Some("throttled"),
                Some(format!(
                    "still throttled after the retries ({graph_said}); nothing was changed for it: run again later"
                )),
            );
            Next::Stop
        }
        status => {
            set(
                Outcome::Failed,
                Some("service-error"),
                Some(format!(
                    "HTTP {status} ({graph_said}); the change may or may not have been applied: run the same reclaim again, it is idempotent"
                )),
            );
            Next::Stop
        }
    }
}

/// A 400 from `assignLicense`. Microsoft documents no codes for these (all are
/// `Request_BadRequest`), so the message is the only discriminator.
fn classify(mode: Mode, message: &str) -> (Outcome, &'static str, String) {
    let m = message.to_ascii_lowercase();
    if mode == Mode::Remove && m.contains("does not have a corresponding license") {
        return (
            Outcome::AlreadyAbsent,
            "already-absent",
            "the user no longer held this licence".into(),
        );
    }
    let (reason, hint) = if m.contains("inherited from a group") {
        ("inherited", "the licence is inherited from a group")
    } else if m.contains("does not have any available licenses") {
        (
            "no-seats",
            "no seats left for this SKU; free or buy one and undo again",
        )
    } else if m.contains("depends on the service plan") {
        (
            "dependency",
            "another licence of the user depends on this one: reclaim that one in the same run, or first",
        )
    } else if m.contains("does not correspond to a valid company license") {
        ("unknown-sku", "the tenant does not subscribe to this SKU")
    } else if m.contains("usage location") {
        (
            "usage-location",
            "the user has no usage location; set one to assign licences",
        )
    } else {
        ("rejected", "Microsoft Graph refused the change")
    };
    (Outcome::Failed, reason, hint.to_string())
}
