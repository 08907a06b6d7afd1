//! Small accessors over simd-json's borrowed DOM that turn absent or mistyped fields into
//! [`DecodeError::Field`] instead of panics or silent defaults.

use simd_json::prelude::*;
use simd_json::BorrowedValue as Value;

use super::DecodeError;

/// Parses `payload` in place, reusing `buffers` across messages.
pub(crate) fn parse<'v>(
    payload: &'v mut [u8],
    buffers: &mut simd_json::Buffers,
) -> Result<Value<'v>, DecodeError> {
    simd_json::to_borrowed_value_with_buffers(payload, buffers)
        .map_err(|e| DecodeError::Json(e.to_string()))
}

/// A required string field.
pub(crate) fn str_field<'v>(v: &'v Value<'_>, key: &'static str) -> Result<&'v str, DecodeError> {
    v.get(key)
        .and_then(|x| x.as_str())
        .ok_or(DecodeError::Field(key))
}

/// A required array field.
pub(crate) fn array_field<'v, 'i>(
    v: &'v Value<'i>,
    key: &'static str,
) -> Result<&'v [Value<'i>], DecodeError> {
    v.get(key)
        .and_then(|x| x.as_array())
        .map(|a| a.as_slice())
        .ok_or(DecodeError::Field(key))
}

/// A required unsigned integer field.
pub(crate) fn u64_field(v: &Value<'_>, key: &'static str) -> Result<u64, DecodeError> {
    v.get(key)
        .and_then(|x| x.as_u64())
        .ok_or(DecodeError::Field(key))
}

/// Element `i` of an array value as a string.
pub(crate) fn str_at<'v>(
    arr: &'v [Value<'_>],
    i: usize,
    what: &'static str,
) -> Result<&'v str, DecodeError> {
    arr.get(i)
        .and_then(|x| x.as_str())
        .ok_or(DecodeError::Field(what))
}

/// A `[price, size, ...]` level as its two strings.
pub(crate) fn level_strs<'v>(level: &'v Value<'_>) -> Result<(&'v str, &'v str), DecodeError> {
    let arr = level.as_array().ok_or(DecodeError::Field("level"))?;
    Ok((
        str_at(arr, 0, "level price")?,
        str_at(arr, 1, "level size")?,
    ))
}
