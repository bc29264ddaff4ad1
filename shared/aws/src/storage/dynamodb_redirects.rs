//! Accepted signed redirects in the token table: per shop, one item keyed
//! [`redirect_key`] (`signed-redirect#platform#id`, never a shop's own key,
//! and the token table is never scanned or listed), holding the newest
//! accepted redirect's signed time (N, epoch ms), the SHA-256 of its
//! signature (S, hex; never the signature) and a TTL at the end of its
//! acceptance window. The table is the token cache's: it already has TTL,
//! and the install callback already may UpdateItem and DeleteItem on it.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::aws_errors::summary;
use super::dynamo_item::{
    Item, conditional_failure_item, done_unless_unavailable, epoch_seconds, millis,
};
use super::dynamodb::DynamoTokenCache;
use crate::ids::ShopRef;
use crate::model::{AcceptedRedirect, SignatureDigest};
use broker_domain::storage::raw::from_millis;
use broker_domain::storage::{
    RedirectAcceptance, SignedRedirects, StoreError, redirect_acceptance, redirect_key,
};

pub use super::dynamo_item::{PARTITION_KEY, TTL_ATTRIBUTE};

const SIGNED_AT: &str = "signed_at";
const DIGEST: &str = "signature_digest";

impl SignedRedirects for DynamoTokenCache {
    /// One conditional write: accepted only if no redirect is recorded or
    /// the recorded one is signed earlier. When the condition fails, the
    /// item as it was (`ALL_OLD`) tells a repeat from an outdated redirect.
    async fn accept_once(
        &self,
        shop: &ShopRef,
        redirect: &AcceptedRedirect,
    ) -> Result<RedirectAcceptance, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(redirect_key(shop)))
            .update_expression("SET #signed = :signed, #digest = :digest, #ttl = :ttl")
            .condition_expression("attribute_not_exists(#signed) OR #signed < :signed")
            .expression_attribute_names("#signed", SIGNED_AT)
            .expression_attribute_names("#digest", DIGEST)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":signed", millis(redirect.signed_at))
            .expression_attribute_values(":digest", AttributeValue::S(redirect.digest.to_hex()))
            .expression_attribute_values(":ttl", epoch_seconds(redirect.expires_at))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(RedirectAcceptance::Accepted {
                previous: output
                    .attributes()
                    .filter(|old| old.contains_key(SIGNED_AT))
                    .map(redirect_from_item)
                    .transpose()?,
            }),
            Err(error) => match conditional_failure_item(&error) {
                Some(current) => Ok(redirect_acceptance(
                    Some(&redirect_from_item(&current)?),
                    redirect,
                )),
                None => Err(StoreError::Unavailable(summary(&error))),
            },
        }
    }

    async fn withdraw(
        &self,
        shop: &ShopRef,
        redirect: &AcceptedRedirect,
        previous: Option<&AcceptedRedirect>,
    ) -> Result<(), StoreError> {
        let key = AttributeValue::S(redirect_key(shop));
        let ours = "#signed = :ours_signed AND #digest = :ours_digest";
        let ours_signed = millis(redirect.signed_at);
        let ours_digest = AttributeValue::S(redirect.digest.to_hex());
        match previous {
            Some(previous) => {
                let result = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key(PARTITION_KEY, key)
                    .update_expression("SET #signed = :signed, #digest = :digest, #ttl = :ttl")
                    .condition_expression(ours)
                    .expression_attribute_names("#signed", SIGNED_AT)
                    .expression_attribute_names("#digest", DIGEST)
                    .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                    .expression_attribute_values(":signed", millis(previous.signed_at))
                    .expression_attribute_values(
                        ":digest",
                        AttributeValue::S(previous.digest.to_hex()),
                    )
                    .expression_attribute_values(":ttl", epoch_seconds(previous.expires_at))
                    .expression_attribute_values(":ours_signed", ours_signed)
                    .expression_attribute_values(":ours_digest", ours_digest)
                    .send()
                    .await;
                // A newer redirect was accepted meanwhile: it stays.
                done_unless_unavailable(result)
            }
            None => {
                let result = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .key(PARTITION_KEY, key)
                    .condition_expression(ours)
                    .expression_attribute_names("#signed", SIGNED_AT)
                    .expression_attribute_names("#digest", DIGEST)
                    .expression_attribute_values(":ours_signed", ours_signed)
                    .expression_attribute_values(":ours_digest", ours_digest)
                    .send()
                    .await;
                done_unless_unavailable(result)
            }
        }
    }
}

/// Names the field only; the values are a time and a digest, no secret.
fn redirect_from_item(item: &Item) -> Result<AcceptedRedirect, StoreError> {
    let bad = |field: &str| StoreError::Corrupt(format!("a signed redirect's record: bad {field}"));
    let number = |name: &str| {
        item.get(name)
            .and_then(|value| value.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or_else(|| bad(name))
    };
    let signed_at = from_millis(number(SIGNED_AT)?).ok_or_else(|| bad(SIGNED_AT))?;
    let digest = item
        .get(DIGEST)
        .and_then(|value| value.as_s().ok())
        .and_then(|hex| SignatureDigest::from_hex(hex))
        .ok_or_else(|| bad(DIGEST))?;
    let ttl = number(TTL_ATTRIBUTE)?;
    let expires_at = u64::try_from(ttl)
        .ok()
        .and_then(|seconds| {
            std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(seconds))
        })
        .ok_or_else(|| bad(TTL_ATTRIBUTE))?;
    Ok(AcceptedRedirect {
        signed_at,
        digest,
        expires_at,
    })
}
