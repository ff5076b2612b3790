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

/// The mapped object as a serde `Deserializer`, read straight from the shape and the values:
/// the typed canonical message is built without the intermediate `serde_json` map, its keys
/// or its nodes. It yields exactly what [`Shape::build`] would (nested objects made only of
/// defaults are left out), so a record maps the same either way; errors carry no path, and the
/// caller builds the object to explain one.
pub(crate) struct ShapeDeserializer<'a> {
    shape: &'a Shape,
    values: &'a mut [Found],
}

impl<'a> ShapeDeserializer<'a> {
    pub(crate) fn new(shape: &'a Shape, values: &'a mut [Found]) -> ShapeDeserializer<'a> {
        ShapeDeserializer { shape, values }
    }
}

impl<'de> serde::Deserializer<'de> for ShapeDeserializer<'_> {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_map(ShapeMap {
            children: self.shape.children.iter(),
            values: self.values,
            pending: None,
        })
    }

    /// A mapped object that is there is a present message (`Option<Address>` is `Some`).
    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct ShapeMap<'a> {
    children: std::slice::Iter<'a, (String, Slot)>,
    values: &'a mut [Found],
    /// The value of the key just handed out.
    pending: Option<Pending<'a>>,
}

enum Pending<'a> {
    Value(Value),
    Object(&'a Shape),
}

impl<'de> serde::de::MapAccess<'de> for ShapeMap<'_> {
    type Error = serde_json::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        for (key, slot) in self.children.by_ref() {
            let pending = match slot {
                Slot::Field(index) => match self.values[*index].take() {
                    Some((value, _)) => Pending::Value(value),
                    None => continue,
                },
                Slot::Object(shape) if shape.has_record_value(self.values) => {
                    Pending::Object(shape)
                }
                Slot::Object(_) => continue,
            };
            self.pending = Some(pending);
            let key = serde::de::value::StrDeserializer::<serde_json::Error>::new(key);
            return seed.deserialize(key).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        match self.pending.take() {
            Some(Pending::Value(value)) => seed.deserialize(value),
            Some(Pending::Object(shape)) => seed.deserialize(ShapeDeserializer {
                shape,
                values: self.values,
            }),
            None => Err(serde::de::Error::custom(
                "a map value was asked for before its key",
            )),
        }
    }
}
