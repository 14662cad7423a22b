//! Licence reclamation. The export exists in the contract; this version plans nothing yet and
//! says so with a typed error, so a platform can tell "unsupported" from a failure.

use crate::error::{ConnectorError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReclaimTarget {
    pub user: String,
    pub skus: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReclaimRequest {
    pub targets: Vec<ReclaimTarget>,
    pub dry_run: bool,
}

pub fn run(request: &ReclaimRequest) -> Result<String> {
    if request.targets.is_empty() {
        return Err(ConnectorError::request(
            "targets",
            "no user to reclaim licences from",
        ));
    }
    Err(ConnectorError::Unsupported(
        "licence reclamation is not supported by this version of the connector".into(),
    ))
}
