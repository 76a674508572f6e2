//! The set of ACLs. The cluster metadata holds one, changed by its `CreateAcls` and
//! `DeleteAcls` records, which every broker's authorizer reads.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::model::{AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType};

/// Every ACL, ordered by resource type first (so one type's are a contiguous range).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acls(BTreeSet<AclBinding>);

impl Acls {
    /// The ACLs on resources of `resource_type`.
    pub fn of_type(&self, resource_type: ResourceType) -> impl Iterator<Item = &AclBinding> {
        // The least binding of the type: the other fields at their lowest.
        let first = AclBinding {
            resource_type,
            name: String::new(),
            pattern: PatternType::Any,
            principal: String::new(),
            host: String::new(),
            operation: Operation::Any,
            permission: Permission::Any,
        };
        self.0
            .range(first..)
            .take_while(move |a| a.resource_type == resource_type)
    }

    /// The ACLs `filter` selects.
    pub fn matching<'a>(&'a self, filter: &'a AclFilter) -> impl Iterator<Item = &'a AclBinding> {
        self.0.iter().filter(|a| filter.matches(a))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds ACLs (one already present stays once).
    pub fn create(&mut self, acls: Vec<AclBinding>) {
        self.0.extend(acls);
    }

    /// Removes ACLs (one absent is ignored: another request removed it first).
    pub fn delete(&mut self, acls: &[AclBinding]) {
        for acl in acls {
            self.0.remove(acl);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(resource_type: ResourceType, name: &str) -> AclBinding {
        AclBinding {
            resource_type,
            name: name.into(),
            pattern: PatternType::Literal,
            principal: "User:a".into(),
            host: "*".into(),
            operation: Operation::All,
            permission: Permission::Allow,
        }
    }

    #[test]
    fn of_type_returns_exactly_that_types_acls() {
        let mut acls = Acls::default();
        let (t, g, c) = (
            acl(ResourceType::Topic, "t"),
            acl(ResourceType::Group, "g"),
            acl(ResourceType::Cluster, "kafka-cluster"),
        );
        acls.create(vec![c.clone(), t.clone(), g.clone(), t.clone()]);
        assert_eq!(acls.len(), 3);
        assert_eq!(acls.of_type(ResourceType::Group).collect::<Vec<_>>(), [&g]);
        assert_eq!(acls.of_type(ResourceType::Topic).collect::<Vec<_>>(), [&t]);
        assert_eq!(acls.of_type(ResourceType::User).count(), 0);
        acls.delete(&[g.clone(), g]);
        assert_eq!(acls.of_type(ResourceType::Group).count(), 0);
        assert_eq!(acls.len(), 2);
    }
}
