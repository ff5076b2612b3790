//! Where each field's value goes in the mapped object, worked out once per spec.

use serde_json::Value;

use super::compiled::Field;

#[derive(Debug, Default)]
pub(crate) struct Shape {
    children: Vec<(String, Slot)>,
}

#[derive(Debug)]
enum Slot {
    Field(usize),
    Object(Shape),
}

/// One field's value for one record, and whether the record gave it (not a default).
pub(crate) type Found = Option<(Value, bool)>;

impl Shape {
    pub(crate) fn of(fields: &[Field]) -> Shape {
        let mut shape = Shape::default();
        for (index, field) in fields.iter().enumerate() {
            shape.insert(&field.segments, index);
        }
        shape
    }

    fn insert(&mut self, segments: &[String], index: usize) {
        // Parent/child target conflicts are refused at compile time, so a field never needs
        // to become an object here.
        match segments {
            [] => {}
            [last] => self.children.push((last.clone(), Slot::Field(index))),
            [first, rest @ ..] => {
                let position = self
                    .children
                    .iter()
                    .position(|(key, slot)| key == first && matches!(slot, Slot::Object(_)));
                let position = position.unwrap_or_else(|| {
                    self.children
                        .push((first.clone(), Slot::Object(Shape::default())));
                    self.children.len() - 1
                });
                if let Slot::Object(child) = &mut self.children[position].1 {
                    child.insert(rest, index);
                }
            }
        }
    }

    fn has_record_value(&self, values: &[Found]) -> bool {
        self.children.iter().any(|(_, slot)| match slot {
            Slot::Field(index) => matches!(values[*index], Some((_, true))),
            Slot::Object(shape) => shape.has_record_value(values),
        })
    }

    /// The mapped object; nested objects made only of defaults are left out.
    pub(crate) fn build(&self, values: &mut [Found], root: bool) -> Option<Value> {
        if !root && !self.has_record_value(values) {
            return None;
        }
        let mut object = serde_json::Map::new();
        for (key, slot) in &self.children {
            let value = match slot {
                Slot::Field(index) => values[*index].take().map(|(value, _)| value),
                Slot::Object(shape) => shape.build(values, false),
            };
            if let Some(value) = value {
                object.insert(key.clone(), value);
            }
        }
        Some(Value::Object(object))
    }
}
