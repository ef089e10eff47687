//! S3 bucket policies: the subset of the IAM policy language Hangar
//! evaluates, whether a policy is public, and the policy operations.
//!
//! A document is validated in full when it is put ([`BucketPolicy::parse`]):
//! anything Hangar could not evaluate honestly is refused with
//! `MalformedPolicy`, so a stored policy always means what it says. The
//! stored text is the document as put; it is parsed again when a request is
//! evaluated.
//!
//! What is understood:
//!
//! - `Version` (`2012-10-17` or `2008-10-17`, or none), `Id`, `Statement`
//!   (one object or a list);
//! - per statement `Sid` (unique), `Effect` (`Allow` | `Deny`), `Principal`
//!   (`"*"`, or `{"AWS": …}` with `"*"`, a 12-digit account, or
//!   `arn:aws:iam::<account>:root|user/…|role/…`, all meaning the account;
//!   `{"Service": …}` is accepted and matches no Hangar request),
//!   `Action`/`NotAction` (`*`, `s3:<name>` with `*` and `?`, compared
//!   without case), `Resource`/`NotResource` (`arn:aws:s3:::<this bucket>`
//!   and `arn:aws:s3:::<this bucket>/<key pattern>`, patterns with `*` and
//!   `?`, compared with case);
//! - `Condition` with the operators `StringEquals`, `StringNotEquals`,
//!   `StringEqualsIgnoreCase`, `StringNotEqualsIgnoreCase`, `StringLike`,
//!   `StringNotLike`, `Bool` (each also with the `IfExists` suffix) and
//!   `Null`, on the keys `aws:SecureTransport`, `aws:PrincipalAccount` and
//!   `aws:PrincipalType` (`Account` for a signed request, `Anonymous` for an
//!   unsigned one).
//!
//! Refused: `NotPrincipal`, other principal kinds (`CanonicalUser`,
//! `Federated`), other condition keys (`aws:SourceIp`, …), other operators
//! (`IpAddress`, `ForAnyValue:…`, …), actions of other services, and
//! resources outside the bucket.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::access::{AccessRequest, Principal, actions};
use crate::buckets::BucketError;
use crate::model::Bucket;
use crate::repo::StoreError;
use crate::service::Hangar;

/// S3's limit on a bucket policy: 20 KB.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// How many times a read-modify-write is retried after losing a race.
const RETRIES: usize = 8;

const ARN_PREFIX: &str = "arn:aws:s3:::";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// Who a statement names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Principals {
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous callers included.
    any: bool,
    /// 12-digit account IDs.
    accounts: Vec<String>,
}

/// `Action` / `Resource` (`negated: false`) or `NotAction` / `NotResource`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Patterns {
    negated: bool,
    patterns: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    Bool,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConditionKey {
    SecureTransport,
    PrincipalAccount,
    PrincipalType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    operator: Operator,
    if_exists: bool,
    key: ConditionKey,
    values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    effect: Effect,
    principals: Principals,
    actions: Patterns,
    resources: Patterns,
    conditions: Vec<Condition>,
}

/// A validated bucket policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketPolicy {
    statements: Vec<Statement>,
}

/// What a policy says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A matching `Deny` statement.
    Deny,
    /// No matching `Deny`, and a matching `Allow` statement.
    Allow,
    /// No statement matches.
    NotApplicable,
}

/// The request as policies see it.
#[derive(Debug, Clone, Copy)]
pub struct PolicyRequest<'a> {
    pub principal: &'a Principal,
    pub action: &'a str,
    /// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`, as
    /// [`resource_arn`] builds it.
    pub resource: &'a str,
    pub secure_transport: bool,
}

/// The ARN of a bucket (`key: None`) or of one of its objects.
pub fn resource_arn(bucket: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("{ARN_PREFIX}{bucket}/{key}"),
        None => format!("{ARN_PREFIX}{bucket}"),
    }
}

fn malformed(message: impl Into<String>) -> BucketError {
    BucketError::MalformedPolicy(message.into())
}

/// `*` (any run, also empty) and `?` (any one character) against `text`.
pub fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let fold = |c: char| {
        if ignore_case {
            c.to_ascii_lowercase()
        } else {
            c
        }
    };
    let pattern: Vec<char> = pattern.chars().map(fold).collect();
    let text: Vec<char> = text.chars().map(fold).collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it is matched up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?'])
}

fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// A string or a list of strings (`Action`, `Resource`, principal values).
fn strings(value: &Value, invalid: &str) -> Result<Vec<String>, BucketError> {
    match value {
        Value::String(text) => Ok(vec![text.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.clone()),
                _ => Err(malformed(invalid)),
            })
            .collect(),
        _ => Err(malformed(invalid)),
    }
}

/// Condition values: strings, booleans or numbers, alone or in a list.
fn condition_values(value: &Value) -> Result<Vec<String>, BucketError> {
    let one = |value: &Value| match value {
        Value::String(text) => Ok(text.clone()),
        Value::Bool(flag) => Ok(flag.to_string()),
        Value::Number(number) => Ok(number.to_string()),
        _ => Err(malformed("Policy has an invalid condition value")),
    };
    match value {
        Value::Array(items) if !items.is_empty() => items.iter().map(one).collect(),
        Value::Array(_) => Err(malformed("Policy has an invalid condition value")),
        other => Ok(vec![one(other)?]),
    }
}

/// One `AWS` principal value: the account it names, `None` for `*`.
fn aws_principal(text: &str) -> Result<Option<String>, BucketError> {
    let invalid = || malformed("Invalid principal in policy");
    if text == "*" {
        return Ok(None);
    }
    if is_account_id(text) {
        return Ok(Some(text.to_owned()));
    }
    let rest = text.strip_prefix("arn:aws:iam::").ok_or_else(invalid)?;
    let (account, resource) = rest.split_once(':').ok_or_else(invalid)?;
    if !is_account_id(account) {
        return Err(invalid());
    }
    let named = |prefix: &str| {
        resource
            .strip_prefix(prefix)
            .is_some_and(|name| !name.is_empty() && !has_wildcard(name))
    };
    if resource == "root" || named("user/") || named("role/") {
        Ok(Some(account.to_owned()))
    } else {
        Err(invalid())
    }
}

fn parse_principal(value: &Value) -> Result<Principals, BucketError> {
    const INVALID: &str = "Invalid principal in policy";
    match value {
        Value::String(text) if text == "*" => Ok(Principals {
            any: true,
            accounts: Vec::new(),
        }),
        Value::Object(map) if !map.is_empty() => {
            let mut principals = Principals::default();
            for (kind, value) in map {
                match kind.as_str() {
                    "AWS" => {
                        for text in strings(value, INVALID)? {
                            match aws_principal(&text)? {
                                None => principals.any = true,
                                Some(account) => principals.accounts.push(account),
                            }
                        }
                    }
                    // Service principals are valid S3 policy, and no
                    // Hangar request comes from an AWS service.
                    "Service" => {
                        for text in strings(value, INVALID)? {
                            if text.is_empty() || has_wildcard(&text) {
                                return Err(malformed(INVALID));
                            }
                        }
                    }
                    _ => return Err(malformed(INVALID)),
                }
            }
            Ok(principals)
        }
        _ => Err(malformed(INVALID)),
    }
}

fn parse_action(text: &str) -> Result<String, BucketError> {
    if text == "*" {
        return Ok(text.to_owned());
    }
    let valid = text.len() > 3
        && text[..3].eq_ignore_ascii_case("s3:")
        && text[3..]
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'*' || byte == b'?');
    if valid {
        Ok(text.to_owned())
    } else {
        Err(malformed("Policy has invalid action"))
    }
}

fn parse_resource(text: &str, bucket: &str) -> Result<String, BucketError> {
    let invalid = || malformed("Policy has invalid resource");
    let rest = text.strip_prefix(ARN_PREFIX).ok_or_else(invalid)?;
    let named = rest.split_once('/').map_or(rest, |(name, _)| name);
    if named != bucket {
        return Err(invalid());
    }
    Ok(text.to_owned())
}

fn parse_operator(name: &str) -> Result<(Operator, bool), BucketError> {
    let (base, if_exists) = match name.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (name, false),
    };
    let operator = match base {
        "StringEquals" => Operator::StringEquals,
        "StringNotEquals" => Operator::StringNotEquals,
        "StringEqualsIgnoreCase" => Operator::StringEqualsIgnoreCase,
        "StringNotEqualsIgnoreCase" => Operator::StringNotEqualsIgnoreCase,
        "StringLike" => Operator::StringLike,
        "StringNotLike" => Operator::StringNotLike,
        "Bool" => Operator::Bool,
        "Null" if !if_exists => Operator::Null,
        _ => return Err(malformed(format!("Invalid Condition type : {name}"))),
    };
    Ok((operator, if_exists))
}

fn parse_condition_key(name: &str) -> Result<ConditionKey, BucketError> {
    match name.to_ascii_lowercase().as_str() {
        "aws:securetransport" => Ok(ConditionKey::SecureTransport),
        "aws:principalaccount" => Ok(ConditionKey::PrincipalAccount),
        "aws:principaltype" => Ok(ConditionKey::PrincipalType),
        _ => Err(malformed("Policy has an invalid condition key")),
    }
}

fn parse_conditions(value: &Value) -> Result<Vec<Condition>, BucketError> {
    let Value::Object(operators) = value else {
        return Err(malformed("Policy has an invalid condition"));
    };
    let mut conditions = Vec::new();
    for (name, keys) in operators {
        let (operator, if_exists) = parse_operator(name)?;
        let Value::Object(keys) = keys else {
            return Err(malformed("Policy has an invalid condition"));
        };
        if keys.is_empty() {
            return Err(malformed("Policy has an invalid condition"));
        }
        for (key, values) in keys {
            let key = parse_condition_key(key)?;
            let values = condition_values(values)?;
            if matches!(operator, Operator::Bool | Operator::Null)
                && !values.iter().all(|value| {
                    value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
                })
            {
                return Err(malformed("Policy has an invalid condition value"));
            }
            conditions.push(Condition {
                operator,
                if_exists,
                key,
                values,
            });
        }
    }
    Ok(conditions)
}

/// Actions that act on objects (`arn:aws:s3:::bucket/key`), for the check
/// that every named action applies to some resource of its statement.
const OBJECT_ACTIONS: &[&str] = &[
    actions::GET_OBJECT,
    actions::PUT_OBJECT,
    actions::DELETE_OBJECT,
    actions::GET_OBJECT_TAGGING,
    actions::PUT_OBJECT_TAGGING,
    actions::DELETE_OBJECT_TAGGING,
    actions::ABORT_MULTIPART_UPLOAD,
    actions::LIST_MULTIPART_UPLOAD_PARTS,
    "s3:GetObjectAcl",
    "s3:PutObjectAcl",
    "s3:GetObjectVersion",
    "s3:DeleteObjectVersion",
    "s3:GetObjectAttributes",
    "s3:RestoreObject",
];

/// Actions that act on the bucket itself (`arn:aws:s3:::bucket`).
const BUCKET_ACTIONS: &[&str] = &[
    actions::LIST_BUCKET,
    actions::LIST_BUCKET_MULTIPART_UPLOADS,
    actions::GET_BUCKET_LOCATION,
    actions::GET_BUCKET_POLICY,
    actions::PUT_BUCKET_POLICY,
    actions::DELETE_BUCKET_POLICY,
    actions::GET_BUCKET_POLICY_STATUS,
    actions::GET_BUCKET_PUBLIC_ACCESS_BLOCK,
    actions::PUT_BUCKET_PUBLIC_ACCESS_BLOCK,
    actions::GET_ENCRYPTION_CONFIGURATION,
    actions::PUT_ENCRYPTION_CONFIGURATION,
    actions::DELETE_BUCKET,
    "s3:ListBucketVersions",
    "s3:GetBucketAcl",
    "s3:PutBucketAcl",
];

/// Bucket-configuration actions: only the owner may perform them, whatever
/// a policy grants (a `Deny` still applies to the owner).
const OWNER_ONLY_ACTIONS: &[&str] = &[
    actions::GET_BUCKET_POLICY,
    actions::PUT_BUCKET_POLICY,
    actions::DELETE_BUCKET_POLICY,
    actions::GET_BUCKET_POLICY_STATUS,
    actions::GET_BUCKET_PUBLIC_ACCESS_BLOCK,
    actions::PUT_BUCKET_PUBLIC_ACCESS_BLOCK,
    actions::GET_ENCRYPTION_CONFIGURATION,
    actions::PUT_ENCRYPTION_CONFIGURATION,
    actions::DELETE_BUCKET,
];

/// The policy operations the owner may always perform, so that no policy
/// locks them out (as S3 does for the account's root user).
const OWNER_ALWAYS_ACTIONS: &[&str] = &[
    actions::GET_BUCKET_POLICY,
    actions::PUT_BUCKET_POLICY,
    actions::DELETE_BUCKET_POLICY,
];

/// Whether only the bucket's owner may perform `action`.
pub fn is_owner_only(action: &str) -> bool {
    OWNER_ONLY_ACTIONS
        .iter()
        .any(|owner_only| owner_only.eq_ignore_ascii_case(action))
}

/// Refuses a statement naming a known action none of its resources can be
/// (S3: "Action does not apply to any resource(s) in statement").
fn check_actions_apply(actions: &Patterns, resources: &Patterns) -> Result<(), BucketError> {
    if actions.negated || resources.negated {
        return Ok(());
    }
    let has_object = resources
        .patterns
        .iter()
        .any(|r| r[ARN_PREFIX.len()..].contains('/'));
    let has_bucket = resources
        .patterns
        .iter()
        .any(|r| !r[ARN_PREFIX.len()..].contains('/'));
    for action in &actions.patterns {
        let known = |list: &[&str]| list.iter().any(|known| known.eq_ignore_ascii_case(action));
        if (known(OBJECT_ACTIONS) && !has_object) || (known(BUCKET_ACTIONS) && !has_bucket) {
            return Err(malformed(
                "Action does not apply to any resource(s) in statement",
            ));
        }
    }
    Ok(())
}

fn parse_statement(
    value: &Value,
    bucket: &str,
    sids: &mut HashSet<String>,
) -> Result<Statement, BucketError> {
    let Value::Object(map) = value else {
        return Err(malformed("Policy has an invalid statement"));
    };
    for field in map.keys() {
        if !matches!(
            field.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(malformed(format!("Unknown field {field}")));
        }
    }
    match map.get("Sid") {
        Some(Value::String(sid)) if !sid.is_empty() && !sids.insert(sid.clone()) => {
            return Err(malformed("Statement IDs (SID) must be unique"));
        }
        None | Some(Value::String(_)) => {}
        Some(_) => return Err(malformed("Policy has an invalid Sid")),
    }
    let effect = match map.get("Effect") {
        None => return Err(malformed("Missing required field Effect")),
        Some(Value::String(effect)) if effect == "Allow" => Effect::Allow,
        Some(Value::String(effect)) if effect == "Deny" => Effect::Deny,
        Some(other) => {
            let shown = other
                .as_str()
                .map_or_else(|| other.to_string(), str::to_owned);
            return Err(malformed(format!("Invalid effect: {shown}")));
        }
    };
    if map.contains_key("NotPrincipal") {
        return Err(malformed(
            "NotPrincipal is not supported by this endpoint; use Principal",
        ));
    }
    let principals = match map.get("Principal") {
        None => return Err(malformed("Missing required field Principal")),
        Some(value) => parse_principal(value)?,
    };
    let actions = match (map.get("Action"), map.get("NotAction")) {
        (Some(_), Some(_)) => {
            return Err(malformed("Statement has both Action and NotAction"));
        }
        (None, None) => return Err(malformed("Missing required field Action")),
        (Some(value), None) | (None, Some(value)) => Patterns {
            negated: map.contains_key("NotAction"),
            patterns: strings(value, "Policy has invalid action")?
                .iter()
                .map(|action| parse_action(action))
                .collect::<Result<_, _>>()?,
        },
    };
    let resources = match (map.get("Resource"), map.get("NotResource")) {
        (Some(_), Some(_)) => {
            return Err(malformed("Statement has both Resource and NotResource"));
        }
        (None, None) => return Err(malformed("Missing required field Resource")),
        (Some(value), None) | (None, Some(value)) => Patterns {
            negated: map.contains_key("NotResource"),
            patterns: strings(value, "Policy has invalid resource")?
                .iter()
                .map(|resource| parse_resource(resource, bucket))
                .collect::<Result<_, _>>()?,
        },
    };
    check_actions_apply(&actions, &resources)?;
    let conditions = match map.get("Condition") {
        None => Vec::new(),
        Some(value) => parse_conditions(value)?,
    };
    Ok(Statement {
        effect,
        principals,
        actions,
        resources,
        conditions,
    })
}

impl BucketPolicy {
    /// Validates `document` as the policy of `bucket`: `MalformedPolicy`
    /// with S3's message when it is not one Hangar can evaluate.
    pub fn parse(document: &str, bucket: &str) -> Result<BucketPolicy, BucketError> {
        if document.len() > MAX_POLICY_BYTES {
            return Err(malformed(
                "Policy exceeds the maximum allowed document size of 20 KB.",
            ));
        }
        let value: Value = serde_json::from_str(document)
            .map_err(|_| malformed("This policy contains invalid Json"))?;
        let Value::Object(map) = value else {
            return Err(malformed("This policy contains invalid Json"));
        };
        Self::from_map(&map, bucket)
    }

    fn from_map(map: &Map<String, Value>, bucket: &str) -> Result<BucketPolicy, BucketError> {
        for field in map.keys() {
            if !matches!(field.as_str(), "Version" | "Id" | "Statement") {
                return Err(malformed(format!("Unknown field {field}")));
            }
        }
        match map.get("Version") {
            None => {}
            Some(Value::String(version)) if version == "2012-10-17" || version == "2008-10-17" => {}
            Some(_) => return Err(malformed("Policy has an invalid version")),
        }
        match map.get("Id") {
            None | Some(Value::String(_)) => {}
            Some(_) => return Err(malformed("Policy has an invalid Id")),
        }
        let statements: Vec<&Value> = match map.get("Statement") {
            None => return Err(malformed("Missing required field Statement")),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(item @ Value::Object(_)) => vec![item],
            Some(_) => return Err(malformed("Policy has an invalid statement")),
        };
        if statements.is_empty() {
            return Err(malformed("Could not parse the policy: Statement is empty!"));
        }
        let mut sids = HashSet::new();
        let statements = statements
            .into_iter()
            .map(|statement| parse_statement(statement, bucket, &mut sids))
            .collect::<Result<_, _>>()?;
        Ok(BucketPolicy { statements })
    }

    /// Whether the policy grants access to everyone: some `Allow` statement
    /// names `*` as principal without a condition that pins the caller's
    /// account to fixed values (`aws:PrincipalAccount` with `StringEquals`,
    /// `StringEqualsIgnoreCase` or a wildcard-free `StringLike`). A
    /// condition on `aws:SecureTransport` or `aws:PrincipalType` does not
    /// make a statement non-public.
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(Statement::is_public)
    }

    /// What the policy says about `request`: a matching `Deny` wins over a
    /// matching `Allow`.
    pub fn evaluate(&self, request: &PolicyRequest<'_>) -> Decision {
        let mut allowed = false;
        for statement in &self.statements {
            if !statement.matches(request) {
                continue;
            }
            match statement.effect {
                Effect::Deny => return Decision::Deny,
                Effect::Allow => allowed = true,
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::NotApplicable
        }
    }
}

impl Statement {
    fn is_public(&self) -> bool {
        self.effect == Effect::Allow
            && self.principals.any
            && !self.conditions.iter().any(Condition::pins_account)
    }

    fn matches(&self, request: &PolicyRequest<'_>) -> bool {
        self.principals.matches(request.principal)
            && self.actions.matches(request.action, true)
            && self.resources.matches(request.resource, false)
            && self
                .conditions
                .iter()
                .all(|condition| condition.holds(request))
    }
}

impl Principals {
    fn matches(&self, principal: &Principal) -> bool {
        if self.any {
            return true;
        }
        match principal {
            Principal::Account(caller) => self.accounts.contains(&caller.account_id),
            Principal::Anonymous => false,
        }
    }
}

impl Patterns {
    fn matches(&self, text: &str, ignore_case: bool) -> bool {
        let any = self
            .patterns
            .iter()
            .any(|pattern| wildcard_match(pattern, text, ignore_case));
        any != self.negated
    }
}

impl Condition {
    /// Restricts the statement to fixed accounts: what makes a wildcard
    /// principal non-public.
    fn pins_account(&self) -> bool {
        self.key == ConditionKey::PrincipalAccount
            && !self.if_exists
            && match self.operator {
                Operator::StringEquals | Operator::StringEqualsIgnoreCase => true,
                Operator::StringLike => !self.values.iter().any(|value| has_wildcard(value)),
                _ => false,
            }
    }

    fn holds(&self, request: &PolicyRequest<'_>) -> bool {
        let value: Option<String> = match self.key {
            ConditionKey::SecureTransport => Some(request.secure_transport.to_string()),
            ConditionKey::PrincipalAccount => request.principal.account_id().map(str::to_owned),
            ConditionKey::PrincipalType => Some(
                match request.principal {
                    Principal::Account(_) => "Account",
                    Principal::Anonymous => "Anonymous",
                }
                .to_owned(),
            ),
        };
        if self.operator == Operator::Null {
            let wants_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            let wants_present = self.values.iter().any(|v| v.eq_ignore_ascii_case("false"));
            return if value.is_none() {
                wants_absent
            } else {
                wants_present
            };
        }
        let negated = matches!(
            self.operator,
            Operator::StringNotEquals
                | Operator::StringNotEqualsIgnoreCase
                | Operator::StringNotLike
        );
        let Some(value) = value else {
            // A missing key: `…IfExists` holds, a negated operator holds,
            // anything else does not.
            return self.if_exists || negated;
        };
        let any = self.values.iter().any(|expected| match self.operator {
            Operator::StringEquals | Operator::StringNotEquals => expected == &value,
            Operator::StringEqualsIgnoreCase
            | Operator::StringNotEqualsIgnoreCase
            | Operator::Bool => expected.eq_ignore_ascii_case(&value),
            Operator::StringLike | Operator::StringNotLike => {
                wildcard_match(expected, &value, false)
            }
            Operator::Null => false,
        });
        any != negated
    }
}

impl Hangar {
    /// `PutBucketPolicy` on a bucket the caller was authorized for:
    /// validates the document, refuses a public one while the bucket's
    /// `BlockPublicPolicy` is on, and stores it as given.
    pub async fn put_bucket_policy(
        &self,
        bucket: &Bucket,
        document: &str,
    ) -> Result<(), BucketError> {
        let policy = BucketPolicy::parse(document, &bucket.name)?;
        self.update_policy(bucket, |current| {
            let blocked = current
                .public_access_block
                .is_some_and(|block| block.block_public_policy);
            if blocked && policy.is_public() {
                return Err(BucketError::PublicPolicyBlocked(current.name.clone()));
            }
            current.policy = Some(document.to_owned());
            Ok(())
        })
        .await
    }

    /// `DeleteBucketPolicy`: succeeds also when there is none.
    pub async fn delete_bucket_policy(&self, bucket: &Bucket) -> Result<(), BucketError> {
        if bucket.policy.is_none() {
            return Ok(());
        }
        self.update_policy(bucket, |current| {
            current.policy = None;
            Ok(())
        })
        .await
    }

    /// `GetBucketPolicy`: the document as put.
    pub fn bucket_policy(bucket: &Bucket) -> Result<&str, BucketError> {
        bucket
            .policy
            .as_deref()
            .ok_or_else(|| BucketError::NoSuchBucketPolicy(bucket.name.clone()))
    }

    /// `GetBucketPolicyStatus`: whether the bucket's policy is public
    /// (`NoSuchBucketPolicy` without one, as S3 answers).
    pub fn bucket_policy_is_public(bucket: &Bucket) -> Result<bool, BucketError> {
        let document = Self::bucket_policy(bucket)?;
        Ok(BucketPolicy::parse(document, &bucket.name)?.is_public())
    }

    /// Read-modify-write of the bucket record, retried on a lost race. A
    /// bucket deleted (or re-created by another account) meanwhile is
    /// `NoSuchBucket`.
    async fn update_policy(
        &self,
        bucket: &Bucket,
        change: impl Fn(&mut Bucket) -> Result<(), BucketError>,
    ) -> Result<(), BucketError> {
        for _ in 0..RETRIES {
            let mut current = match self.store.get_bucket(&bucket.name).await? {
                Some(current) if current.owner_id == bucket.owner_id => current,
                _ => return Err(BucketError::NoSuchBucket(bucket.name.clone())),
            };
            change(&mut current)?;
            match self.store.update_bucket(&current).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(BucketError::Internal(format!(
            "bucket {} kept changing while its policy was set",
            bucket.name
        )))
    }
}

/// The access decision for `request` on `bucket` (see
/// [`Hangar::authorize`]): `true` when allowed.
pub fn allows(bucket: &Bucket, request: &AccessRequest<'_>) -> Result<bool, BucketError> {
    let is_owner = request.principal.account_id() == Some(bucket.owner_id.as_str());
    if is_owner
        && OWNER_ALWAYS_ACTIONS
            .iter()
            .any(|action| action.eq_ignore_ascii_case(request.action))
    {
        return Ok(true);
    }
    let policy = match &bucket.policy {
        None => None,
        Some(document) => Some(
            BucketPolicy::parse(document, &bucket.name).map_err(|error| {
                BucketError::Internal(format!(
                    "the stored policy of bucket {} no longer parses: {error}",
                    bucket.name
                ))
            })?,
        ),
    };
    let resource = resource_arn(&bucket.name, request.key);
    let policy_request = PolicyRequest {
        principal: request.principal,
        action: request.action,
        resource: &resource,
        secure_transport: request.secure_transport,
    };
    let restrict = bucket
        .public_access_block
        .is_some_and(|block| block.restrict_public_buckets);
    let decision = match &policy {
        None => Decision::NotApplicable,
        // RestrictPublicBuckets: a bucket whose policy is public lets only
        // its owner's account in, as S3 does: cross-account grants of that
        // policy are ignored too, not only its public ones.
        Some(policy) if restrict && policy.is_public() => match policy.evaluate(&policy_request) {
            Decision::Deny => Decision::Deny,
            _ => Decision::NotApplicable,
        },
        Some(policy) => policy.evaluate(&policy_request),
    };
    Ok(match decision {
        Decision::Deny => false,
        _ if is_owner => true,
        _ if is_owner_only(request.action) => false,
        Decision::Allow => true,
        Decision::NotApplicable => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PublicAccessBlock;
    use crate::service::Caller;

    const BUCKET: &str = "photos";
    const ALICE: &str = "111111111111";
    const BOB: &str = "222222222222";

    fn parse(document: &str) -> Result<BucketPolicy, BucketError> {
        BucketPolicy::parse(document, BUCKET)
    }

    fn refusal(document: &str) -> String {
        match parse(document) {
            Err(BucketError::MalformedPolicy(message)) => message,
            other => panic!("{document}: {other:?}"),
        }
    }

    fn account(id: &str) -> Principal {
        Principal::Account(Caller {
            account_id: id.into(),
            region: "us-east-1".into(),
        })
    }

    fn statement(effect: &str, principal: &str, action: &str, resource: &str) -> String {
        format!(
            r#"{{"Effect":"{effect}","Principal":{principal},"Action":"{action}","Resource":"{resource}"}}"#
        )
    }

    fn policy(statements: &[String]) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
            statements.join(",")
        )
    }

    #[test]
    fn wildcards() {
        let table = [
            ("*", "", true),
            ("*", "anything", true),
            ("a*", "abc", true),
            ("a*c", "abc", true),
            ("a*c", "abd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*.jpg", "x/y.jpg", true),
            ("*.jpg", "x/y.jpgx", false),
            ("a**b", "ab", true),
            ("a*b*c", "aXbYbZc", true),
            ("abc", "ABC", false),
            ("", "", true),
            ("", "a", false),
            ("é?", "éx", true),
        ];
        for (pattern, text, expected) in table {
            assert_eq!(
                wildcard_match(pattern, text, false),
                expected,
                "{pattern:?} {text:?}"
            );
        }
        assert!(wildcard_match("s3:get*", "s3:GetObject", true));
        assert!(!wildcard_match("s3:get*", "s3:GetObject", false));
    }

    #[test]
    fn parses_the_accepted_forms() {
        let documents = [
            // A single statement object, no version.
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}}"#,
            r#"{"Version":"2008-10-17","Id":"x","Statement":[{"Sid":"a","Effect":"Deny","Principal":{"AWS":["111111111111","arn:aws:iam::222222222222:root","arn:aws:iam::222222222222:user/x","*"]},"NotAction":["s3:Put*","S3:DELETE?BJECT"],"Resource":["arn:aws:s3:::photos","arn:aws:s3:::photos/*"]}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"logging.s3.amazonaws.com"},"Action":"*","NotResource":"arn:aws:s3:::photos/private/*"}]}"#,
            r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::photos/*","Condition":{"Bool":{"aws:SecureTransport":false},"StringNotEqualsIfExists":{"AWS:PrincipalAccount":["111111111111"]},"Null":{"aws:PrincipalAccount":"true"},"StringLike":{"aws:PrincipalType":"Acc*"}}}]}"#,
        ];
        for document in documents {
            parse(document).unwrap_or_else(|error| panic!("{document}: {error:?}"));
        }
    }

    #[test]
    fn refusals() {
        let ok_statement = statement("Allow", r#""*""#, "s3:GetObject", "arn:aws:s3:::photos/*");
        let too_big = format!(
            r#"{{"Id":"{}","Statement":[{ok_statement}]}}"#,
            "x".repeat(MAX_POLICY_BYTES)
        );
        let with = |field: &str| {
            format!(
                r#"{{"Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*",{field}}}]}}"#
            )
        };
        let table: Vec<(String, &str)> = vec![
            (too_big, "maximum allowed document size"),
            ("not json".into(), "invalid Json"),
            ("[1]".into(), "invalid Json"),
            (r#"{"Version":"2012-10-17"}"#.into(), "Missing required field Statement"),
            (r#"{"Statement":[]}"#.into(), "Statement is empty"),
            (format!(r#"{{"Version":"2020-01-01","Statement":[{ok_statement}]}}"#), "invalid version"),
            (format!(r#"{{"Extra":1,"Statement":[{ok_statement}]}}"#), "Unknown field Extra"),
            (with(r#""Other":1"#), "Unknown field Other"),
            (policy(&[ok_statement.replace("Allow", "Maybe")]), "Invalid effect: Maybe"),
            (r#"{"Statement":[{"Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}]}"#.into(), "Missing required field Effect"),
            (r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}]}"#.into(), "Missing required field Principal"),
            (r#"{"Statement":[{"Effect":"Allow","Principal":"*","Resource":"arn:aws:s3:::photos/*"}]}"#.into(), "Missing required field Action"),
            (r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}]}"#.into(), "Missing required field Resource"),
            (r#"{"Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"111111111111"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}]}"#.into(), "NotPrincipal"),
            (policy(&[statement("Allow", r#""111111111111""#, "s3:GetObject", "arn:aws:s3:::photos/*")]), "Invalid principal in policy"),
            (policy(&[statement("Allow", r#"{"AWS":"1111"}"#, "s3:GetObject", "arn:aws:s3:::photos/*")]), "Invalid principal in policy"),
            (policy(&[statement("Allow", r#"{"AWS":"arn:aws:iam::111111111111:group/x"}"#, "s3:GetObject", "arn:aws:s3:::photos/*")]), "Invalid principal in policy"),
            (policy(&[statement("Allow", r#"{"CanonicalUser":"abc"}"#, "s3:GetObject", "arn:aws:s3:::photos/*")]), "Invalid principal in policy"),
            (policy(&[statement("Allow", r#"{}"#, "s3:GetObject", "arn:aws:s3:::photos/*")]), "Invalid principal in policy"),
            (policy(&[statement("Allow", r#""*""#, "ec2:RunInstances", "arn:aws:s3:::photos/*")]), "Policy has invalid action"),
            (policy(&[statement("Allow", r#""*""#, "s3:", "arn:aws:s3:::photos/*")]), "Policy has invalid action"),
            (policy(&[statement("Allow", r#""*""#, "s3:GetObject", "arn:aws:s3:::other/*")]), "Policy has invalid resource"),
            (policy(&[statement("Allow", r#""*""#, "s3:GetObject", "arn:aws:s3:::photos2/*")]), "Policy has invalid resource"),
            (policy(&[statement("Allow", r#""*""#, "s3:GetObject", "*")]), "Policy has invalid resource"),
            (policy(&[statement("Allow", r#""*""#, "s3:GetObject", "arn:aws:s3:::photos")]), "Action does not apply"),
            (policy(&[statement("Allow", r#""*""#, "s3:ListBucket", "arn:aws:s3:::photos/*")]), "Action does not apply"),
            (with(r#""Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#), "Invalid Condition type : IpAddress"),
            (with(r#""Condition":{"ForAnyValue:StringEquals":{"aws:PrincipalAccount":"1"}}"#), "Invalid Condition type"),
            (with(r#""Condition":{"StringEquals":{"aws:SourceAccount":"111111111111"}}"#), "invalid condition key"),
            (with(r#""Condition":{"Bool":{"aws:SecureTransport":"maybe"}}"#), "invalid condition value"),
            (with(r#""Condition":{"Bool":{"aws:SecureTransport":[]}}"#), "invalid condition value"),
            (with(r#""Condition":"x""#), "invalid condition"),
            (policy(&[ok_statement.replace('{', r#"{"Sid":"same","#), ok_statement.replace('{', r#"{"Sid":"same","#)]), "must be unique"),
        ];
        for (document, expected) in table {
            let message = refusal(&document);
            assert!(message.contains(expected), "{document}: {message}");
        }
    }

    #[test]
    fn public_or_not() {
        let anyone = r#""*""#;
        let table = [
            (
                statement("Allow", anyone, "s3:GetObject", "arn:aws:s3:::photos/*"),
                true,
            ),
            (
                statement(
                    "Allow",
                    r#"{"AWS":"*"}"#,
                    "s3:GetObject",
                    "arn:aws:s3:::photos/*",
                ),
                true,
            ),
            (
                statement(
                    "Allow",
                    r#"{"AWS":["222222222222","*"]}"#,
                    "s3:GetObject",
                    "arn:aws:s3:::photos/*",
                ),
                true,
            ),
            (
                statement(
                    "Allow",
                    r#"{"AWS":"222222222222"}"#,
                    "s3:GetObject",
                    "arn:aws:s3:::photos/*",
                ),
                false,
            ),
            (
                statement("Deny", anyone, "s3:GetObject", "arn:aws:s3:::photos/*"),
                false,
            ),
            (
                statement(
                    "Allow",
                    r#"{"Service":"logging.s3.amazonaws.com"}"#,
                    "s3:PutObject",
                    "arn:aws:s3:::photos/*",
                ),
                false,
            ),
        ];
        for (text, public) in table {
            assert_eq!(
                parse(&policy(std::slice::from_ref(&text))).map(|p| p.is_public()),
                Ok(public),
                "{text}"
            );
        }
        let conditioned = |condition: &str| {
            policy(&[format!(
                r#"{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*","Condition":{condition}}}"#
            )])
        };
        let table = [
            (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, true),
            (r#"{"StringEquals":{"aws:PrincipalType":"Account"}}"#, true),
            (
                r#"{"StringEquals":{"aws:PrincipalAccount":["222222222222"]}}"#,
                false,
            ),
            (
                r#"{"StringEqualsIgnoreCase":{"aws:PrincipalAccount":"222222222222"}}"#,
                false,
            ),
            (
                r#"{"StringLike":{"aws:PrincipalAccount":"222222222222"}}"#,
                false,
            ),
            (r#"{"StringLike":{"aws:PrincipalAccount":"2222*"}}"#, true),
            (
                r#"{"StringEqualsIfExists":{"aws:PrincipalAccount":"222222222222"}}"#,
                true,
            ),
            (
                r#"{"StringNotEquals":{"aws:PrincipalAccount":"222222222222"}}"#,
                true,
            ),
            (
                r#"{"Bool":{"aws:SecureTransport":"true"},"StringEquals":{"aws:PrincipalAccount":"222222222222"}}"#,
                false,
            ),
        ];
        for (condition, public) in table {
            assert_eq!(
                parse(&conditioned(condition)).map(|p| p.is_public()),
                Ok(public),
                "{condition}"
            );
        }
    }

    fn bucket_with(policy: Option<String>, restrict: bool) -> Bucket {
        Bucket {
            name: BUCKET.into(),
            region: "us-east-1".into(),
            owner_id: ALICE.into(),
            created_ms: 1,
            public_access_block: Some(PublicAccessBlock {
                restrict_public_buckets: restrict,
                ..PublicAccessBlock::ALL_BLOCKED
            }),
            policy,
            encryption: Default::default(),
            revision: 0,
        }
    }

    fn allowed(
        bucket: &Bucket,
        principal: &Principal,
        action: &'static str,
        key: Option<&str>,
        tls: bool,
    ) -> bool {
        allows(
            bucket,
            &AccessRequest {
                principal,
                action,
                key,
                secure_transport: tls,
            },
        )
        .expect("evaluates")
    }

    #[test]
    fn evaluation_matrix() {
        let (alice, bob, carol, anonymous) = (
            account(ALICE),
            account(BOB),
            account("333333333333"),
            Principal::Anonymous,
        );
        let object = "arn:aws:s3:::photos/*";
        let grants = [
            ("none", None),
            (
                "allow bob",
                Some(policy(&[statement(
                    "Allow",
                    r#"{"AWS":"arn:aws:iam::222222222222:root"}"#,
                    "s3:GetObject",
                    object,
                )])),
            ),
            (
                "allow everyone",
                Some(policy(&[statement(
                    "Allow",
                    r#""*""#,
                    "s3:GetObject",
                    object,
                )])),
            ),
            (
                "deny everyone",
                Some(policy(&[statement(
                    "Deny",
                    r#""*""#,
                    "s3:GetObject",
                    object,
                )])),
            ),
            (
                "allow bob and everyone",
                Some(policy(&[
                    statement("Allow", r#"{"AWS":"222222222222"}"#, "s3:GetObject", object),
                    statement("Allow", r#""*""#, "s3:GetObject", object),
                ])),
            ),
            (
                "allow everyone, deny bob",
                Some(policy(&[
                    statement("Allow", r#""*""#, "s3:*", object),
                    statement("Deny", r#"{"AWS":"222222222222"}"#, "s3:Get*", object),
                ])),
            ),
        ];
        // (grant, restrict) → (alice, bob, carol, anonymous) on GetObject.
        let expected: [(&str, bool, [bool; 4]); 12] = [
            ("none", false, [true, false, false, false]),
            ("none", true, [true, false, false, false]),
            ("allow bob", false, [true, true, false, false]),
            ("allow bob", true, [true, true, false, false]),
            ("allow everyone", false, [true, true, true, true]),
            ("allow everyone", true, [true, false, false, false]),
            ("deny everyone", false, [false, false, false, false]),
            ("deny everyone", true, [false, false, false, false]),
            ("allow bob and everyone", false, [true, true, true, true]),
            // A public policy under RestrictPublicBuckets: only the owner.
            ("allow bob and everyone", true, [true, false, false, false]),
            ("allow everyone, deny bob", false, [true, false, true, true]),
            (
                "allow everyone, deny bob",
                true,
                [true, false, false, false],
            ),
        ];
        for (name, restrict, outcome) in expected {
            let document = grants
                .iter()
                .find(|(grant, _)| *grant == name)
                .map(|(_, document)| document.clone())
                .expect("grant");
            let bucket = bucket_with(document, restrict);
            for (principal, want) in [&alice, &bob, &carol, &anonymous].into_iter().zip(outcome) {
                assert_eq!(
                    allowed(
                        &bucket,
                        principal,
                        actions::GET_OBJECT,
                        Some("a/b.jpg"),
                        false
                    ),
                    want,
                    "{name}, restrict {restrict}, {principal:?}"
                );
            }
        }
    }

    #[test]
    fn actions_resources_and_configuration() {
        let document = policy(&[
            statement(
                "Allow",
                r#"{"AWS":"222222222222"}"#,
                "s3:*",
                "arn:aws:s3:::photos",
            ),
            statement(
                "Allow",
                r#"{"AWS":"222222222222"}"#,
                "s3:Get*",
                "arn:aws:s3:::photos/public/*",
            ),
        ]);
        let bucket = bucket_with(Some(document), true);
        let bob = account(BOB);
        assert!(allowed(&bucket, &bob, actions::LIST_BUCKET, None, false));
        assert!(allowed(
            &bucket,
            &bob,
            actions::GET_BUCKET_LOCATION,
            None,
            false
        ));
        assert!(allowed(
            &bucket,
            &bob,
            actions::GET_OBJECT,
            Some("public/x"),
            false
        ));
        assert!(!allowed(
            &bucket,
            &bob,
            actions::GET_OBJECT,
            Some("private/x"),
            false
        ));
        assert!(!allowed(
            &bucket,
            &bob,
            actions::PUT_OBJECT,
            Some("public/x"),
            false
        ));
        // Configuration stays the owner's, whatever the policy grants.
        for action in OWNER_ONLY_ACTIONS {
            assert!(!allowed(&bucket, &bob, action, None, false), "{action}");
        }
    }

    #[test]
    fn deny_binds_the_owner_except_for_the_policy_itself() {
        let document = policy(&[
            r#"{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::photos","arn:aws:s3:::photos/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#.to_owned(),
        ]);
        let bucket = bucket_with(Some(document), true);
        let alice = account(ALICE);
        assert!(!allowed(
            &bucket,
            &alice,
            actions::GET_OBJECT,
            Some("k"),
            false
        ));
        assert!(allowed(
            &bucket,
            &alice,
            actions::GET_OBJECT,
            Some("k"),
            true
        ));
        assert!(!allowed(&bucket, &alice, actions::LIST_BUCKET, None, false));
        assert!(!allowed(
            &bucket,
            &alice,
            actions::GET_BUCKET_POLICY_STATUS,
            None,
            false
        ));
        for action in OWNER_ALWAYS_ACTIONS {
            assert!(allowed(&bucket, &alice, action, None, false), "{action}");
        }
        // A deny of the policy operations does not stop bob being refused.
        assert!(!allowed(
            &bucket,
            &account(BOB),
            actions::GET_BUCKET_POLICY,
            None,
            true
        ));
    }

    #[test]
    fn conditions() {
        let with = |condition: &str| {
            bucket_with(
                Some(policy(&[format!(
                    r#"{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*","Condition":{condition}}}"#
                )])),
                false,
            )
        };
        let (bob, anonymous) = (account(BOB), Principal::Anonymous);
        let check = |condition: &str, principal: &Principal, tls: bool| {
            allowed(
                &with(condition),
                principal,
                actions::GET_OBJECT,
                Some("k"),
                tls,
            )
        };
        let pinned = r#"{"StringEquals":{"aws:PrincipalAccount":"222222222222"}}"#;
        assert!(check(pinned, &bob, false));
        assert!(!check(pinned, &account("333333333333"), false));
        assert!(!check(pinned, &anonymous, false));
        let secure = r#"{"Bool":{"aws:SecureTransport":"true"}}"#;
        assert!(check(secure, &anonymous, true));
        assert!(!check(secure, &anonymous, false));
        let not_bob = r#"{"StringNotEquals":{"aws:PrincipalAccount":"222222222222"}}"#;
        assert!(!check(not_bob, &bob, false));
        assert!(check(not_bob, &anonymous, false));
        let if_exists = r#"{"StringEqualsIfExists":{"aws:PrincipalAccount":"222222222222"}}"#;
        assert!(check(if_exists, &anonymous, false));
        assert!(!check(if_exists, &account("333333333333"), false));
        let signed_only = r#"{"Null":{"aws:PrincipalAccount":"false"}}"#;
        assert!(check(signed_only, &bob, false));
        assert!(!check(signed_only, &anonymous, false));
        let anonymous_type = r#"{"StringEquals":{"aws:PrincipalType":"Anonymous"}}"#;
        assert!(check(anonymous_type, &anonymous, false));
        assert!(!check(anonymous_type, &bob, false));
        let like = r#"{"StringLike":{"aws:PrincipalAccount":"2222*"}}"#;
        assert!(check(like, &bob, false));
        assert!(!check(like, &account("333333333333"), false));
    }
}
