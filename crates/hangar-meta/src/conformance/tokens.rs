//! Checks of idempotency tokens.

use hangar_core::repo::MetaStore;

use super::{ok, unique};

/// The first claim of a token in a scope wins: it returns `None`, and every
/// later claim, whatever its fingerprint and result, returns the first's
/// and changes nothing. Scopes and tokens are independent.
pub async fn check_claim_client_token(store: &dyn MetaStore) {
    let scope = format!("conformance-{:x}:RunInstances", unique());
    let other_scope = format!("conformance-{:x}:RunInstances", unique());
    let token = "token-✈ \"quoted\"";
    let first = (
        "fingerprint-a".to_owned(),
        "{\"instanceIds\":[\"i-0123456789abcdef0\"],\"note\":\"it's\\nfine\"}".to_owned(),
    );

    let claimed = ok(
        store
            .claim_client_token(&scope, token, &first.0, &first.1)
            .await,
        "claim a new token",
    );
    assert_eq!(
        claimed, None,
        "conformance: the first claim of a token must return None"
    );

    let claimed = ok(
        store
            .claim_client_token(&scope, token, "fingerprint-b", "result-b")
            .await,
        "claim it again with other parameters",
    );
    assert_eq!(
        claimed.as_ref(),
        Some(&first),
        "conformance: a later claim must return the first claim's fingerprint and result"
    );

    let claimed = ok(
        store
            .claim_client_token(&scope, token, &first.0, &first.1)
            .await,
        "claim it again as the first did (a retry)",
    );
    assert_eq!(
        claimed.as_ref(),
        Some(&first),
        "conformance: a retry must return what was recorded first"
    );

    let claimed = ok(
        store
            .claim_client_token(&other_scope, token, "fingerprint-c", "result-c")
            .await,
        "claim the token in another scope",
    );
    assert_eq!(
        claimed, None,
        "conformance: a token claimed in one scope must be new in another"
    );
    let claimed = ok(
        store
            .claim_client_token(&scope, "another-token", "fingerprint-d", "result-d")
            .await,
        "claim another token in the scope",
    );
    assert_eq!(
        claimed, None,
        "conformance: another token in the same scope must be new"
    );
    let claimed = ok(
        store
            .claim_client_token(&other_scope, token, "fingerprint-e", "result-e")
            .await,
        "claim the token in the other scope again",
    );
    assert_eq!(
        claimed,
        Some(("fingerprint-c".to_owned(), "result-c".to_owned())),
        "conformance: each scope must keep its own first claim"
    );
}
