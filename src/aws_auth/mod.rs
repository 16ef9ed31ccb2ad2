//! The aws-auth ConfigMap's lists, read like the authenticator reads them and edited byte-minimally.
//!
//! Pure functions over the *string values* of `data.mapRoles`, `data.mapUsers` and `data.mapAccounts` (the YAML
//! text inside the ConfigMap), shared by the remediator's live edits and the manifest checker:
//!
//! - [`analyze_roles`], [`analyze_users`], [`analyze_accounts`], [`analyze`]: every entry with its line, canonical
//!   ARN, username and groups, whether the authenticator drops it and why, and the problems that keep it from
//!   matching (role paths, placeholders, wildcards, duplicates, ...). A syntax or type error drops the whole key.
//! - [`find_mapping`] / [`ConfigAnalysis::find`]: how a caller's ARN is matched, or why it is not.
//! - [`add_role`], [`add_user`], [`replace_arn`], [`remove`]: append or change one item in the document's own
//!   style, keeping every other byte, and verify the result re-parses to exactly the expected items.
//! - Manifest files (`eks-auth aws-auth`): [`parse_manifest`] finds the lists inside ConfigMap documents and maps
//!   their lines to the file; [`edit_list`], [`add_mapping`], [`remove_mapping`] write an edited list back in its
//!   own encoding (`|` block, quoted string, bare list); [`check::check`] reports findings with file lines.
//!
//! ```
//! use eks_auth_remediator::aws_auth::{self, MatchKind, NewMapping};
//! let text = "- rolearn: arn:aws:iam::111122223333:role/nodes\n  username: system:node:{{EC2PrivateDNSName}}\n  groups:\n    - system:bootstrappers\n    - system:nodes\n";
//! let edit = aws_auth::add_role(text, &NewMapping {
//!     arn: "arn:aws:iam::111122223333:role/ci/deployer".into(),
//!     username: "deployer".into(),
//!     groups: vec!["deployers".into()],
//! })?;
//! assert!(edit.text.starts_with(text));
//! assert!(edit.text.ends_with("- rolearn: arn:aws:iam::111122223333:role/deployer\n  username: deployer\n  groups:\n    - deployers\n"));
//! let roles = aws_auth::analyze_roles(&edit.text);
//! assert!(matches!(
//!     aws_auth::find_mapping(&roles, "arn:aws:sts::111122223333:assumed-role/deployer/bob"),
//!     MatchKind::Exact(e) if e.line == Some(6)
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod analyze;
mod change;
pub mod check;
mod diff;
mod edit;
mod flow;
mod layout;
mod lookup;
mod manifest;
mod manifest_edit;
mod node;
mod problems;
mod render;
mod scalar;
mod write;

pub use analyze::{
    analyze, analyze_accounts, analyze_list, analyze_roles, analyze_users, Account,
    AccountsAnalysis, ConfigAnalysis, Entry, KeyError, KeyErrorKind, ListAnalysis, ListKind,
    SsoMatcher,
};
pub use change::{remove, replace_arn};
pub use diff::unified_diff;
pub use edit::{add, add_role, add_user, Edit, EditError, NewMapping, Note};
pub use lookup::{find_mapping, MatchKind};
pub use manifest::{parse_manifest, DocKind, Document, Located, Manifest, SyntaxError};
pub use manifest_edit::{add_mapping, list_for, remove_mapping};
pub use problems::{DropReason, Field, Problem, RESERVED_USERNAME_PREFIXES, TEMPLATES};
pub use write::{edit_list, target, ManifestEdit, ManifestError};

#[cfg(test)]
mod tests;
