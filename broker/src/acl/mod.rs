//! Authorization with Kafka's ACL model: the model ([`model`]), the set of ACLs
//! ([`store`]) and the decision ([`authorize`]). The cluster metadata holds the ACLs,
//! so every broker decides alike.

pub mod authorize;
pub mod model;
pub mod store;

pub use authorize::{Caller, Decision};
pub use model::{
    AclBinding, AclFilter, InvalidAcl, Operation, PatternType, Permission, ResourceType,
    CLUSTER_NAME, WILDCARD,
};
pub use store::Acls;
