//! What an aggregate asks and answers: `count`, and `sum`/`avg`/`min`/`max` of fields, per group
//! of `groupBy` values.

use std::collections::BTreeMap;

use mishkah_core::schema::FieldType;
use serde_json::{Map, Value};

/// A measure of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Measure {
    Sum,
    Avg,
    Min,
    Max,
}

impl Measure {
    /// `sum`, `avg`, `min`, `max`: the name in requests and answers.
    pub fn name(self) -> &'static str {
        match self {
            Measure::Sum => "sum",
            Measure::Avg => "avg",
            Measure::Min => "min",
            Measure::Max => "max",
        }
    }

    /// Whether the measure can be taken of a field of type `ty` (`sum` and `avg` need numbers;
    /// `min` and `max` any scalar).
    pub fn applies_to(self, ty: FieldType) -> bool {
        match self {
            Measure::Sum | Measure::Avg => matches!(ty, FieldType::Integer | FieldType::Decimal),
            Measure::Min | Measure::Max => ty != FieldType::Json,
        }
    }
}

/// One group: its key values, its row count, and its measures (`measure → field → value`).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub key: Map<String, Value>,
    pub count: u64,
    pub measures: BTreeMap<Measure, Map<String, Value>>,
}
