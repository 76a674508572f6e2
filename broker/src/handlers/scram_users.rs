//! DescribeUserScramCredentials and AlterUserScramCredentials (v0): the users of SASL
//! SCRAM, kept in the cluster metadata. An alteration carries the salt and the salted
//! password (never the password); the controller keeps the stored and server keys
//! derived from them. Refusals are Kafka's: a user named twice is DUPLICATE_RESOURCE,
//! an unknown one RESOURCE_NOT_FOUND, an iteration count outside 4096..=16384 or an
//! empty name, salt or salted password UNACCEPTABLE_CREDENTIAL, a mechanism other than
//! SCRAM-SHA-256/512 UNSUPPORTED_SASL_MECHANISM, and a caller without DESCRIBE or
//! ALTER on the Cluster CLUSTER_AUTHORIZATION_FAILED.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sasl::{Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use tracing::info;

use super::{message, RequestContext};
use crate::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::cluster::metadata::users::{ScramDeletion, ScramUpsert};
use crate::cluster::metadata::MetaRecord;
use crate::cluster::CONTROLLER_TIMEOUT;

type Refusal = (i16, String);

/// Whether the caller may read (`Describe`) or change (`Alter`) users: what the
/// authorizer says of that operation on the Cluster once `authorizer.class.name` is set;
/// without it, anyone while `super.users` is empty (as a Kafka broker without an
/// authorizer) and only a super user otherwise, since users' passwords open the admin
/// port.
fn may_manage_users(ctx: &RequestContext, op: Operation) -> Result<(), Refusal> {
    let settings = &ctx.broker.config.authorizer;
    let principal = ctx.session.principal();
    let allowed = if settings.enabled {
        ctx.checks().allows(op, ResourceType::Cluster, CLUSTER_NAME)
    } else {
        settings.super_users.is_empty() || settings.is_super(&principal)
    };
    if allowed {
        return Ok(());
    }
    info!(principal, peer = ?ctx.peer, "SCRAM users refused: not a super user");
    Err((
        ResponseError::ClusterAuthorizationFailed.code(),
        format!("{principal} may not manage users: {op} on the Cluster is needed"),
    ))
}

pub fn describe(
    ctx: &RequestContext,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if let Err((code, why)) = may_manage_users(ctx, Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ctx.code(code))
            .with_error_message(message(why));
    }
    let state = ctx.broker.cluster.state();
    let scram = &state.scram;
    let named: Vec<String> = match request.users {
        Some(users) if !users.is_empty() => users.iter().map(|u| u.name.to_string()).collect(),
        _ => scram.users().map(|(u, _)| u.clone()).collect(),
    };
    let mut times: HashMap<&str, usize> = HashMap::new();
    for n in &named {
        *times.entry(n).or_default() += 1;
    }
    let results = named
        .iter()
        .map(|user| {
            let out = DescribeUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(user.clone()));
            let refused = |(code, why): Refusal| {
                out.clone()
                    .with_error_code(ctx.code(code))
                    .with_error_message(message(why))
            };
            if times[user.as_str()] > 1 {
                return refused(duplicate("describe"));
            }
            match scram.of(user) {
                None => refused((
                    ResponseError::ResourceNotFound.code(),
                    format!("user {user:?} has no SCRAM credential"),
                )),
                Some(mechanisms) => out.clone().with_credential_infos(infos(mechanisms)),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

fn infos(mechanisms: &BTreeMap<String, sasl::ScramCredential>) -> Vec<CredentialInfo> {
    mechanisms
        .iter()
        .filter_map(|(name, c)| {
            let kind = Mechanism::parse(name)?.kafka_scram_type()?;
            Some(
                CredentialInfo::default()
                    .with_mechanism(kind)
                    .with_iterations(c.iterations as i32),
            )
        })
        .collect()
}

fn duplicate(what: &str) -> Refusal {
    (
        ResponseError::DuplicateResource.code(),
        format!("cannot {what} SCRAM credentials of the same user twice in one request"),
    )
}

fn unacceptable(why: &str) -> Refusal {
    (
        ResponseError::UnacceptableCredential.code(),
        why.to_string(),
    )
}

fn mechanism_of(kind: i8) -> Result<Mechanism, Refusal> {
    Mechanism::from_kafka_scram_type(kind).ok_or_else(|| {
        (
            ResponseError::UnsupportedSaslMechanism.code(),
            format!("unknown SCRAM mechanism {kind}: 1 (SCRAM-SHA-256) or 2 (SCRAM-SHA-512)"),
        )
    })
}

/// Checks one upsertion: the credential to keep.
fn upsert(
    user: &str,
    kind: i8,
    iterations: i32,
    salt: &[u8],
    salted: &[u8],
) -> Result<ScramUpsert, Refusal> {
    let m = mechanism_of(kind)?;
    let iterations = u32::try_from(iterations).unwrap_or(0);
    if iterations < MIN_ITERATIONS {
        return Err(unacceptable(&format!(
            "too few iterations: at least {MIN_ITERATIONS}"
        )));
    }
    if iterations > MAX_ITERATIONS {
        return Err(unacceptable(&format!(
            "too many iterations: at most {MAX_ITERATIONS}"
        )));
    }
    let digest_len = if m == Mechanism::ScramSha512 { 64 } else { 32 };
    if salt.is_empty() || salted.len() != digest_len {
        return Err(unacceptable(&format!(
            "a salt and a {digest_len}-byte salted password are needed for {}",
            m.name()
        )));
    }
    Ok(ScramUpsert {
        user: user.to_string(),
        mechanism: m.name().to_string(),
        credential: sasl::credential_from_salted(m, salted, salt.to_vec(), iterations),
    })
}

/// The alterations of `request` checked against the current credentials: per user, in
/// request order, the change to make or the refusal.
fn check(
    ctx: &RequestContext,
    request: &AlterUserScramCredentialsRequest,
) -> Vec<(String, Result<Change, Refusal>)> {
    let state = ctx.broker.cluster.state();
    let mut times: HashMap<String, usize> = HashMap::new();
    let users = request
        .deletions
        .iter()
        .map(|d| d.name.to_string())
        .chain(request.upsertions.iter().map(|u| u.name.to_string()));
    let users: Vec<String> = users.collect();
    for u in &users {
        *times.entry(u.clone()).or_default() += 1;
    }
    let deletions = request.deletions.iter().map(|d| {
        let user = d.name.to_string();
        let change = mechanism_of(d.mechanism).and_then(|m| match state.scram.get(&user, m) {
            Some(_) => Ok(Change::Delete(ScramDeletion {
                user: user.clone(),
                mechanism: m.name().into(),
            })),
            None => Err((
                ResponseError::ResourceNotFound.code(),
                format!("user {user:?} has no {} credential to delete", m.name()),
            )),
        });
        (user, change)
    });
    let upserts = request.upsertions.iter().map(|u| {
        let user = u.name.to_string();
        let change = upsert(
            &user,
            u.mechanism,
            u.iterations,
            &u.salt,
            &u.salted_password,
        )
        .map(Change::Upsert);
        (user, change)
    });
    deletions
        .chain(upserts)
        .map(|(user, change)| {
            let change = if user.is_empty() {
                Err(unacceptable("the user name is empty"))
            } else if times[&user] > 1 {
                Err(duplicate("alter"))
            } else {
                change
            };
            (user, change)
        })
        .collect()
}

enum Change {
    Upsert(ScramUpsert),
    Delete(ScramDeletion),
}

pub async fn alter(
    ctx: &RequestContext,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut checked = check(ctx, &request);
    if let Err(refusal) = may_manage_users(ctx, Operation::Alter) {
        for (_, change) in &mut checked {
            *change = Err(refusal.clone());
        }
    }
    let (mut upserts, mut deletions) = (Vec::new(), Vec::new());
    for (_, change) in &checked {
        match change {
            Ok(Change::Upsert(u)) => upserts.push(u.clone()),
            Ok(Change::Delete(d)) => deletions.push(d.clone()),
            Err(_) => {}
        }
    }
    let cluster = &ctx.broker.cluster;
    let submitted = if upserts.is_empty() && deletions.is_empty() {
        Ok(())
    } else {
        let record = MetaRecord::AlterScramCredentials {
            request: cluster.request_id(),
            upserts,
            deletions,
        };
        cluster
            .submit(record, CONTROLLER_TIMEOUT)
            .await
            .map_err(|e| (e.code(), e.to_string()))
    };
    let results = checked
        .into_iter()
        .map(|(user, change)| {
            let outcome = change.and_then(|_| submitted.clone());
            let out = AlterUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(user.clone()));
            match outcome {
                Ok(()) => {
                    info!(principal = %ctx.session.principal(), peer = ?ctx.peer, user, "SCRAM credential changed");
                    out
                }
                Err((code, why)) => out
                    .with_error_code(ctx.code(code))
                    .with_error_message(message(why)),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
