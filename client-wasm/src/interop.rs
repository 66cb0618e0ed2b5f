//! JS ⇄ Rust conversions, apart from the exported API.

use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::JsValue;

/// A Rust value as a plain JS value (objects, not `Map`s).
pub fn to_js<T: Serialize + ?Sized>(value: &T) -> JsValue {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).unwrap_or(JsValue::NULL)
}

/// A JS value as JSON.
pub fn from_js(value: JsValue) -> Result<Value, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(Value::Null);
    }
    serde_wasm_bindgen::from_value(value).map_err(|e| error("invalid-argument", &e.to_string(), Value::Null))
}

/// A JS `Error` with `code` and `details`, as every rejected promise of the store carries.
pub fn error(code: &str, message: &str, details: Value) -> JsValue {
    let err = js_sys::Error::new(message);
    let _ = js_sys::Reflect::set(&err, &"code".into(), &code.into());
    let _ = js_sys::Reflect::set(&err, &"details".into(), &to_js(&details));
    err.into()
}

/// Milliseconds since the epoch.
pub fn now() -> mishkah_core::Timestamp {
    mishkah_core::Timestamp(js_sys::Date::now() as i64)
}
