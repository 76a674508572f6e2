//! One event of the audit trail and its JSON form, with the field names of the Open
//! Cybersecurity Schema Framework (OCSF 1.0): an Authentication (class 3002) event for
//! a login, an API Activity (class 6003) event for everything else. The schema is
//! documented in docs/audit.md.

use std::net::SocketAddr;

use serde_json::{json, Value};

use crate::config::audit_log::EventType;

/// What was done, as OCSF's activity ids name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Authentication: a login.
    Logon,
    Create,
    Read,
    Update,
    Delete,
    Other,
}

impl Activity {
    fn id_and_name(self) -> (u32, &'static str) {
        match self {
            Activity::Logon => (1, "Logon"),
            Activity::Create => (1, "Create"),
            Activity::Read => (2, "Read"),
            Activity::Update => (3, "Update"),
            Activity::Delete => (4, "Delete"),
            Activity::Other => (99, "Other"),
        }
    }
}

/// Something an action touched: `type` is `topic`, `group`, `acl`, `user`, `quota`,
/// `broker`, `cluster` or `partition`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub kind: &'static str,
    pub name: String,
}

impl Resource {
    pub fn new(kind: &'static str, name: impl Into<String>) -> Resource {
        Resource {
            kind,
            name: name.into(),
        }
    }
}

/// One security-relevant action, as the broker saw it.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventType,
    pub activity: Activity,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    pub principal: String,
    pub client: Option<SocketAddr>,
    /// `kafka` (with the listener's name) or `admin`.
    pub service: &'static str,
    pub listener: Option<String>,
    /// The Kafka API (`CreateTopics`) or the admin route (`POST /cluster/move`).
    pub operation: String,
    pub resources: Vec<Resource>,
    pub success: bool,
    /// Why it failed, or what it did (error codes, the SASL mechanism's outcome).
    pub detail: Option<String>,
    /// The SASL mechanism (or `HTTP Basic`, `Bearer`) of an authentication.
    pub auth_protocol: Option<String>,
}

impl Event {
    /// The event as written to the trail, by broker `node_id`.
    pub fn to_json(&self, node_id: i32) -> Value {
        let (class_uid, class_name, category_uid) = match self.kind {
            EventType::Authenticate => (3002u32, "Authentication", 3u32),
            _ => (6003, "API Activity", 6),
        };
        let (activity_id, activity_name) = self.activity.id_and_name();
        let (status_id, status) = if self.success {
            (1, "Success")
        } else {
            (2, "Failure")
        };
        let mut v = json!({
            "category_uid": category_uid,
            "class_uid": class_uid,
            "class_name": class_name,
            "activity_id": activity_id,
            "activity_name": activity_name,
            "type_uid": class_uid * 100 + activity_id,
            "time": self.time_ms,
            // Informational for a success, Medium for a refusal or failure.
            "severity_id": if self.success { 1 } else { 3 },
            "status_id": status_id,
            "status": status,
            "actor": { "user": { "name": self.principal } },
            "src_endpoint": {
                "ip": self.client.map(|a| a.ip().to_string()),
                "port": self.client.map(|a| a.port()),
            },
            "dst_endpoint": { "svc_name": self.service, "name": self.listener },
            "api": { "operation": self.operation, "service": { "name": self.service } },
            "resources": self.resources.iter()
                .map(|r| json!({ "type": r.kind, "name": r.name }))
                .collect::<Vec<_>>(),
            "metadata": {
                "product": {
                    "name": "strata",
                    "uid": node_id.to_string(),
                    "version": env!("CARGO_PKG_VERSION"),
                },
                "version": "1.0.0",
            },
            "unmapped": { "event_type": self.kind.name() },
        });
        if let Some(detail) = &self.detail {
            v["status_detail"] = json!(detail);
        }
        if let Some(protocol) = &self.auth_protocol {
            v["auth_protocol"] = json!(protocol);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_ocsf_fields() {
        let e = Event {
            kind: EventType::Authorize,
            activity: Activity::Delete,
            time_ms: 1_700_000_000_000,
            principal: "User:alice".into(),
            client: Some("10.0.0.7:5123".parse().unwrap()),
            service: "kafka",
            listener: Some("SASL_PLAINTEXT".into()),
            operation: "DeleteTopics".into(),
            resources: vec![Resource::new("topic", "orders")],
            success: false,
            detail: Some("DELETE on Topic orders denied".into()),
            auth_protocol: None,
        };
        let v = e.to_json(2);
        assert_eq!(v["class_uid"], 6003);
        assert_eq!(v["type_uid"], 600304);
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["actor"]["user"]["name"], "User:alice");
        assert_eq!(v["src_endpoint"]["ip"], "10.0.0.7");
        assert_eq!(v["resources"][0]["name"], "orders");
        assert_eq!(v["metadata"]["product"]["uid"], "2");
        assert_eq!(v["unmapped"]["event_type"], "authorize");
        let login = Event {
            kind: EventType::Authenticate,
            activity: Activity::Logon,
            success: true,
            detail: None,
            auth_protocol: Some("SCRAM-SHA-256".into()),
            ..e
        };
        let v = login.to_json(2);
        assert_eq!(
            (v["class_uid"].clone(), v["type_uid"].clone()),
            (json!(3002), json!(300201))
        );
        assert_eq!(v["auth_protocol"], "SCRAM-SHA-256");
        assert!(v.get("status_detail").is_none());
    }
}
