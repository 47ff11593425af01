//! Partial updates, one way for every service: an update request carries
//! a `google.protobuf.FieldMask`, and [`field_mask!`] generates, per
//! resource, the function that copies the masked fields onto the stored
//! record (an empty mask copies every editable field; an unknown path is
//! refused naming `update_mask.paths[i]`) and the one that lists which
//! fields a change touched (for events and the audit trail).

/// `field_mask!(apply_lead_mask, changed_lead_fields, Lead, "lead", [first_name, ...])`;
/// append `map custom_fields` for a map field whose single keys can be set
/// with a `custom_fields.<key>` path (a key absent from the source removes it).
#[macro_export]
macro_rules! field_mask {
    ($apply:ident, $changed:ident, $ty:ty, $entity:literal, [$($field:ident),* $(,)?] $(, map $map:ident)?) => {
        /// Copies the masked fields of `source` onto `target`; `mask_field`
        /// names the mask in errors (`update_mask`).
        pub fn $apply(
            target: &mut $ty,
            mut source: $ty,
            paths: &[String],
            mask_field: &str,
        ) -> Result<(), $crate::Error> {
            if paths.is_empty() {
                $(target.$field = std::mem::take(&mut source.$field);)*
                return Ok(());
            }
            for (i, path) in paths.iter().enumerate() {
                $(if path == $crate::mask::field_name(stringify!($field)) {
                    target.$field = std::mem::take(&mut source.$field);
                    continue;
                })*
                $(if let Some(key) = path.strip_prefix(concat!(stringify!($map), ".")) {
                    match source.$map.remove(key) {
                        Some(value) => { target.$map.insert(key.to_owned(), value); }
                        None => { target.$map.remove(key); }
                    }
                    continue;
                })?
                let editable: Vec<&str> = [$(stringify!($field)),*]
                    .into_iter()
                    .map($crate::mask::field_name)
                    .collect();
                return Err($crate::Error::invalid(
                    format!("{mask_field}.paths[{i}]"),
                    format!(
                        "{path:?} is not an editable {} field; editable: {}",
                        $entity,
                        editable.join(", ")
                    ),
                ));
            }
            Ok(())
        }

        /// Names of the editable fields that differ between two versions.
        #[allow(dead_code)] // for resources whose updates publish their changes
        pub fn $changed(before: &$ty, after: &$ty) -> Vec<String> {
            let mut changed = Vec::new();
            $(if before.$field != after.$field {
                changed.push($crate::mask::field_name(stringify!($field)).to_owned());
            })*
            changed
        }
    };
}

/// A field's name in masks and events: `type` for the Rust field `r#type`.
pub fn field_name(rust_name: &'static str) -> &'static str {
    rust_name.strip_prefix("r#").unwrap_or(rust_name)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    #[derive(Default, Clone, PartialEq, Debug)]
    pub struct Thing {
        name: String,
        size: i32,
        extra: HashMap<String, String>,
        locked: String,
    }

    field_mask!(apply, changed, Thing, "thing", [name, size, extra], map extra);

    fn thing(name: &str, size: i32, extra: &[(&str, &str)]) -> Thing {
        Thing {
            name: name.into(),
            size,
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            locked: "stored".into(),
        }
    }

    #[test]
    fn an_empty_mask_copies_every_editable_field_and_nothing_else() {
        let mut target = thing("old", 1, &[("a", "1")]);
        let mut source = thing("new", 2, &[]);
        source.locked = "forged".into();
        apply(&mut target, source, &[], "update_mask").unwrap();
        assert_eq!(target, thing("new", 2, &[]));
    }

    #[test]
    fn masked_paths_copy_only_their_fields_and_single_map_keys() {
        let mut target = thing("old", 1, &[("a", "1"), ("b", "2")]);
        let source = thing("new", 2, &[("a", "9")]);
        let paths = ["size".to_owned(), "extra.a".into(), "extra.b".into()];
        apply(&mut target, source, &paths, "update_mask").unwrap();
        assert_eq!(target, thing("old", 2, &[("a", "9")]));
        assert_eq!(
            changed(&thing("old", 1, &[]), &target),
            vec!["size", "extra"]
        );
    }

    #[derive(Default, Clone, PartialEq, Debug)]
    pub struct Typed {
        r#type: i32,
    }

    field_mask!(apply_typed, changed_typed, Typed, "typed", [r#type]);

    #[test]
    fn a_keyword_field_is_named_without_its_raw_prefix() {
        let mut target = Typed { r#type: 1 };
        apply_typed(
            &mut target,
            Typed { r#type: 2 },
            &["type".to_owned()],
            "update_mask",
        )
        .unwrap();
        assert_eq!(target.r#type, 2);
        assert_eq!(changed_typed(&Typed { r#type: 1 }, &target), vec!["type"]);
    }

    #[test]
    fn an_unknown_or_locked_path_is_refused_naming_its_index() {
        let mut target = thing("old", 1, &[]);
        let paths = ["name".to_owned(), "locked".into()];
        let error = apply(&mut target, thing("new", 2, &[]), &paths, "update_mask").unwrap_err();
        let text = format!("{error:?}");
        assert!(text.contains("update_mask.paths[1]"), "{text}");
        assert!(text.contains("editable: name, size, extra"), "{text}");
    }
}
