//! ARN parsing and the authenticator's canonical form.
//!
//! The authenticator maps `arn:P:sts::A:assumed-role/R/session` to `arn:P:iam::A:role/R` and compares
//! case-insensitively against aws-auth. Access entries want the opposite: the IAM ARN *with* its path.

use std::fmt;

use serde::Serialize;

/// Partitions the authenticator recognises.
pub const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// The kind of IAM principal an ARN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    Role,
    User,
    Root,
    FederatedUser,
    AssumedRole,
    Other,
}

/// A parsed ARN, borrowing nothing so it can outlive the line it came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arn {
    pub partition: String,
    pub service: String,
    pub region: String,
    pub account: String,
    pub resource: String,
}

/// Why a string is not an ARN we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error("not an ARN: expected 6 ':'-separated fields starting with 'arn'")]
    Shape,
    #[error("unrecognised partition '{0}'")]
    Partition(String),
    #[error("account '{0}' is not 12 digits")]
    Account(String),
}

impl Arn {
    /// Parses `arn:partition:service:region:account:resource`.
    ///
    /// # Errors
    /// [`ArnError`] when the shape, partition or (for IAM/STS) the account is wrong.
    pub fn parse(s: &str) -> Result<Arn, ArnError> {
        let s = s.trim();
        let mut it = s.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
        )
        else {
            return Err(ArnError::Shape);
        };
        if resource.is_empty() || service.is_empty() {
            return Err(ArnError::Shape);
        }
        if !PARTITIONS.contains(&partition) {
            return Err(ArnError::Partition(partition.to_string()));
        }
        if matches!(service, "iam" | "sts")
            && (account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ArnError::Account(account.to_string()));
        }
        Ok(Arn {
            partition: partition.to_string(),
            service: service.to_string(),
            region: region.to_string(),
            account: account.to_string(),
            resource: resource.to_string(),
        })
    }

    /// What kind of principal this ARN names.
    pub fn kind(&self) -> PrincipalKind {
        let head = self.resource.split('/').next().unwrap_or("");
        match (self.service.as_str(), head) {
            ("iam", "role") => PrincipalKind::Role,
            ("iam", "user") => PrincipalKind::User,
            ("iam", "root") => PrincipalKind::Root,
            ("sts", "assumed-role") => PrincipalKind::AssumedRole,
            ("sts", "federated-user") => PrincipalKind::FederatedUser,
            _ => PrincipalKind::Other,
        }
    }

    /// The authenticator's canonical form: assumed-role becomes its role, everything else unchanged.
    pub fn canonical(&self) -> Arn {
        if self.kind() == PrincipalKind::AssumedRole {
            // assumed-role/<role>/<session>: the role name never carries a path here.
            let role = self.resource.split('/').nth(1).unwrap_or("");
            return Arn {
                partition: self.partition.clone(),
                service: "iam".into(),
                region: String::new(),
                account: self.account.clone(),
                resource: format!("role/{role}"),
            };
        }
        self.clone()
    }

    /// The path between the type and the name (`gitlab-ci/` in `role/gitlab-ci/runner`), if any.
    pub fn path(&self) -> Option<&str> {
        if !matches!(self.kind(), PrincipalKind::Role | PrincipalKind::User) {
            return None;
        }
        let rest = self.resource.split_once('/')?.1;
        let cut = rest.rfind('/')?;
        Some(&rest[..=cut])
    }

    /// The entity's name: the last path segment of a role or user, the session's role for assumed roles.
    pub fn name(&self) -> &str {
        match self.kind() {
            PrincipalKind::AssumedRole => self.resource.split('/').nth(1).unwrap_or(""),
            _ => self.resource.rsplit('/').next().unwrap_or(""),
        }
    }

    /// The session name of an assumed-role ARN.
    pub fn session(&self) -> Option<&str> {
        (self.kind() == PrincipalKind::AssumedRole)
            .then(|| self.resource.splitn(3, '/').nth(2))
            .flatten()
    }

    /// The same ARN without its path: the form aws-auth needs (`role/a/b/R` -> `role/R`).
    pub fn without_path(&self) -> Arn {
        match self.path() {
            None => self.clone(),
            Some(_) => {
                let head = self.resource.split('/').next().unwrap_or("");
                Arn {
                    resource: format!("{head}/{}", self.name()),
                    ..self.clone()
                }
            }
        }
    }

    /// True for roles created by IAM Identity Center (`aws-reserved/sso.amazonaws.com/...`).
    pub fn is_sso_role(&self) -> bool {
        self.path()
            .is_some_and(|p| p.starts_with("aws-reserved/sso.amazonaws.com/"))
            || self.name().starts_with("AWSReservedSSO_")
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

/// True for exactly an IAM role ARN, `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`, as written
/// (no region, no wildcard, nothing a parse would normalise): the form a role to assume must have.
pub fn is_role_arn(s: &str) -> bool {
    Arn::parse(s).is_ok_and(|a| {
        a.kind() == PrincipalKind::Role
            && a.region.is_empty()
            && a.to_string() == s
            && !s.contains(['*', '?'])
    })
}

/// Canonicalises an ARN string the way the authenticator does; returns the input unchanged when it
/// does not parse (the caller keeps the raw value as evidence either way).
pub fn canonicalize(s: &str) -> String {
    match Arn::parse(s) {
        Ok(a) => a.canonical().to_string(),
        Err(_) => s.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assumed_role_becomes_role_and_keeps_partition() {
        for (input, want) in [
            (
                "arn:aws:sts::111122223333:assumed-role/Admin/alice@example.com",
                "arn:aws:iam::111122223333:role/Admin",
            ),
            (
                "arn:aws-cn:sts::111122223333:assumed-role/dev/s",
                "arn:aws-cn:iam::111122223333:role/dev",
            ),
            (
                "arn:aws-us-gov:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0123abcd/bob",
                "arn:aws-us-gov:iam::111122223333:role/AWSReservedSSO_Admin_0123abcd",
            ),
            (
                "arn:aws:iam::111122223333:user/ops/carol",
                "arn:aws:iam::111122223333:user/ops/carol",
            ),
            (
                "arn:aws:iam::111122223333:root",
                "arn:aws:iam::111122223333:root",
            ),
            (
                "arn:aws:sts::111122223333:federated-user/dan",
                "arn:aws:sts::111122223333:federated-user/dan",
            ),
        ] {
            assert_eq!(canonicalize(input), want, "{input}");
        }
    }

    #[test]
    fn path_and_name() {
        let a = Arn::parse("arn:aws:iam::111122223333:role/gitlab-ci/runner").unwrap();
        assert_eq!(a.path(), Some("gitlab-ci/"));
        assert_eq!(a.name(), "runner");
        assert_eq!(
            a.without_path().to_string(),
            "arn:aws:iam::111122223333:role/runner"
        );
        let sso = Arn::parse(
            "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_abcdef0123456789",
        )
        .unwrap();
        assert!(sso.is_sso_role());
        assert_eq!(
            sso.without_path().to_string(),
            "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_abcdef0123456789"
        );
        let plain = Arn::parse("arn:aws:iam::111122223333:role/runner").unwrap();
        assert_eq!(plain.path(), None);
        assert_eq!(plain.without_path(), plain);
        let assumed = Arn::parse("arn:aws:sts::111122223333:assumed-role/R/i-0abc").unwrap();
        assert_eq!(assumed.session(), Some("i-0abc"));
        assert_eq!(assumed.name(), "R");
    }

    #[test]
    fn rejects_bad_arns() {
        assert_eq!(Arn::parse("nope"), Err(ArnError::Shape));
        assert_eq!(
            Arn::parse("arn:aws-mars:iam::111122223333:role/x"),
            Err(ArnError::Partition("aws-mars".into()))
        );
        assert_eq!(
            Arn::parse("arn:aws:iam::12:role/x"),
            Err(ArnError::Account("12".into()))
        );
        assert_eq!(canonicalize(" not-an-arn "), "not-an-arn");
    }
}
