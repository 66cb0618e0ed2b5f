//! The one REST error shape, `{error, message, details}`, and the mapping of every library error
//! to it. Nothing else in the HTTP layer decides a status code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mishkah_core::mutation::MutationError;
use mishkah_core::wire::ErrorBody;
use serde_json::Value;

use crate::engine::{EngineError, WriteError};
use crate::storage::StorageError;

#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Code-specific details (boxed: errors travel through `Result`s on hot paths).
    pub details: Box<Value>,
}

impl ApiError {
    /// An error with no details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: Box::new(Value::Null) }
    }

    /// 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// Adds details.
    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Box::new(details);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.code.to_owned(), message: self.message, details: *self.details };
        (self.status, Json(body)).into_response()
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> ApiError {
        let status = match &e {
            WriteError::Mutation(m) => match m {
                MutationError::Conflict(_) | MutationError::DuplicateKey { .. } => StatusCode::CONFLICT,
                MutationError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
                MutationError::NotFound { .. } | MutationError::UnknownTable(_) => StatusCode::NOT_FOUND,
                MutationError::MissingKey(_) => StatusCode::BAD_REQUEST,
            },
            WriteError::Storage(StorageError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            WriteError::Storage(StorageError::Unique { .. }) => StatusCode::CONFLICT,
            WriteError::Storage(StorageError::Unsupported(_)) => StatusCode::NOT_IMPLEMENTED,
            WriteError::Storage(_) | WriteError::CommitFailed(_) | WriteError::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            WriteError::BatchAborted { .. } | WriteError::Precondition { .. } | WriteError::MutationIdReused(_) => {
                StatusCode::CONFLICT
            }
            WriteError::Denied(_) => StatusCode::FORBIDDEN,
            WriteError::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, e.code(), e.to_string()).with_details(e.details())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        let status = match e.code() {
            "invalid-branch" => StatusCode::BAD_REQUEST,
            "module-not-found" | "schema-missing" | "branch-not-found" => StatusCode::NOT_FOUND,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        if let StorageError::Unsupported(_) = e {
            return ApiError::new(StatusCode::NOT_IMPLEMENTED, e.code(), e.to_string());
        }
        tracing::error!(error = %e, "storage read failed");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string())
    }
}

impl From<crate::views::pages::PagesError> for ApiError {
    fn from(e: crate::views::pages::PagesError) -> ApiError {
        match e {
            crate::views::pages::PagesError::Storage(storage) => storage.into(),
            _ => ApiError::new(StatusCode::NOT_FOUND, e.code(), e.to_string()),
        }
    }
}

impl From<crate::views::page::PageError> for ApiError {
    fn from(e: crate::views::page::PageError) -> ApiError {
        use crate::views::page::PageError;
        let status = match e {
            PageError::Storage(storage) => return storage.into(),
            PageError::Write(write) => return write.into(),
            PageError::TableLocked(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.code(), e.to_string()).with_details(e.details())
    }
}
