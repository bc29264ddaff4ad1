//! One-line summaries of AWS SDK errors for logs and `StoreError`s.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// Only the error code is kept: service messages can quote request values.
pub(crate) fn summary<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> String {
    match error {
        SdkError::ServiceError(context) => context.err().code().unwrap_or("unknown").to_owned(),
        SdkError::TimeoutError(_) => "timeout".to_owned(),
        SdkError::DispatchFailure(_) => "unreachable".to_owned(),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        _ => "request could not be built".to_owned(),
    }
}
