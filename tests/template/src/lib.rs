//! Reads the SAM template as a JSON tree in CloudFormation's long form, so
//! tests can check its invariants (tests/template_invariants.rs).
//!
//! The template uses the short intrinsic tags (`!Ref`, `!Sub`, `!GetAtt`,
//! `!If`, …); they are rewritten the way CloudFormation reads them:
//! `!Ref X` → `{"Ref": "X"}`, `!GetAtt A.B` → `{"Fn::GetAtt": ["A", "B"]}`,
//! `!Condition C` → `{"Condition": "C"}`, any other `!Name v` →
//! `{"Fn::Name": v}`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use serde_yaml_ng::Value as Yaml;

/// The repository's `template.yaml`.
pub fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
}

/// Reads and parses the repository's `template.yaml`.
pub fn load_template() -> Value {
    let path = template_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    parse_template(&text).unwrap_or_else(|error| panic!("parsing {}: {error}", path.display()))
}

/// Parses CloudFormation YAML (short or long intrinsic form) into long form.
pub fn parse_template(text: &str) -> Result<Value, String> {
    let yaml: Yaml = serde_yaml_ng::from_str(text).map_err(|error| error.to_string())?;
    to_long_form(yaml)
}

fn to_long_form(yaml: Yaml) -> Result<Value, String> {
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(value) => Value::Bool(value),
        Yaml::Number(number) => {
            if let Some(value) = number.as_i64() {
                Value::from(value)
            } else if let Some(value) = number.as_u64() {
                Value::from(value)
            } else {
                let value = number.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(value)
                    .map(Value::Number)
                    .ok_or_else(|| format!("unrepresentable number {value}"))?
            }
        }
        Yaml::String(value) => Value::String(value),
        Yaml::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(to_long_form)
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Yaml::String(key) => key,
                    other => return Err(format!("non-string mapping key {other:?}")),
                };
                object.insert(key, to_long_form(value)?);
            }
            Value::Object(object)
        }
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = to_long_form(tagged.value)?;
            let (key, value) = match name {
                "Ref" => ("Ref".to_owned(), value),
                "Condition" => ("Condition".to_owned(), value),
                "GetAtt" => {
                    let value = match value {
                        Value::String(dotted) => match dotted.split_once('.') {
                            Some((resource, attribute)) => {
                                Value::from(vec![resource.to_owned(), attribute.to_owned()])
                            }
                            None => {
                                return Err(format!(
                                    "!GetAtt {dotted}: expected Resource.Attribute"
                                ));
                            }
                        },
                        other => other,
                    };
                    ("Fn::GetAtt".to_owned(), value)
                }
                other => (format!("Fn::{other}"), value),
            };
            let mut object = Map::new();
            object.insert(key, value);
            Value::Object(object)
        }
    })
}

/// `{"Ref": name}`.
pub fn reference(name: &str) -> Value {
    serde_json::json!({ "Ref": name })
}

/// `{"Fn::GetAtt": [resource, attribute]}`.
pub fn get_att(resource: &str, attribute: &str) -> Value {
    serde_json::json!({ "Fn::GetAtt": [resource, attribute] })
}

/// The template's resources of `kind` (e.g. `AWS::IAM::Role`), by logical id.
pub fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    template["Resources"]
        .as_object()
        .expect("template has Resources")
        .iter()
        .filter(|(_, resource)| resource["Type"] == kind)
        .map(|(id, resource)| (id.as_str(), resource))
        .collect()
}

/// Every IAM policy statement anywhere in the template, with the JSON
/// pointer of the document it belongs to. Both branches of an `Fn::If`
/// count; `Ref AWS::NoValue` branches are skipped.
pub fn policy_statements(template: &Value) -> Vec<(String, &Value)> {
    let mut found = Vec::new();
    collect_statements(template, String::new(), &mut found);
    found
}

fn collect_statements<'a>(node: &'a Value, pointer: String, found: &mut Vec<(String, &'a Value)>) {
    match node {
        Value::Object(object) => {
            if let Some(statements) = object.get("Statement") {
                for statement in conditional_items(statements) {
                    found.push((pointer.clone(), statement));
                }
            }
            for (key, child) in object {
                collect_statements(child, format!("{pointer}/{key}"), found);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                collect_statements(child, format!("{pointer}/{index}"), found);
            }
        }
        _ => {}
    }
}

/// The items of a list (or single item) with `Fn::If` expanded into both of
/// its branches and `Ref AWS::NoValue` dropped.
pub fn conditional_items(node: &Value) -> Vec<&Value> {
    let mut items = Vec::new();
    let mut pending: Vec<&Value> = match node {
        Value::Array(list) => list.iter().rev().collect(),
        other => vec![other],
    };
    while let Some(item) = pending.pop() {
        if *item == reference("AWS::NoValue") {
            continue;
        }
        if let Some(branches) = item.get("Fn::If").and_then(Value::as_array) {
            assert_eq!(
                branches.len(),
                3,
                "Fn::If takes [condition, then, else]: {item}"
            );
            pending.push(&branches[2]);
            pending.push(&branches[1]);
            continue;
        }
        items.push(item);
    }
    items
}

/// A statement's field as a list of values (a single value becomes a list
/// of one), with `Fn::If` branches expanded.
pub fn as_list<'a>(statement: &'a Value, field: &str) -> Vec<&'a Value> {
    match statement.get(field) {
        None => Vec::new(),
        Some(value) => conditional_items(value),
    }
}

/// The template as CloudFormation deploys it when `condition` is `holds`:
/// a resource or output declared under the condition is dropped when it
/// does not hold (its `Condition` key kept when it does), every
/// `Fn::If [condition, then, else]` becomes the branch taken, and a value
/// that is then `Ref AWS::NoValue` disappears from its object or list.
/// Other conditions are left as they are.
pub fn with_condition(template: &Value, condition: &str, holds: bool) -> Value {
    let mut resolved = resolve(template, condition, holds).unwrap_or(Value::Null);
    for section in ["Resources", "Outputs"] {
        if let Some(entries) = resolved.get_mut(section).and_then(Value::as_object_mut) {
            entries.retain(|_, entry| {
                holds || entry.get("Condition") != Some(&Value::from(condition))
            });
        }
    }
    resolved
}

/// `node` with `condition` decided; `None` where it becomes no value.
fn resolve(node: &Value, condition: &str, holds: bool) -> Option<Value> {
    if *node == reference("AWS::NoValue") {
        return None;
    }
    if let Some(branches) = node.get("Fn::If").and_then(Value::as_array)
        && node.as_object().is_some_and(|object| object.len() == 1)
        && branches.len() == 3
    {
        if branches[0] == condition {
            return resolve(&branches[if holds { 1 } else { 2 }], condition, holds);
        }
        // Another condition's branches: a `Ref AWS::NoValue` branch stays.
        let branches = branches
            .iter()
            .map(|branch| resolve(branch, condition, holds).unwrap_or_else(|| branch.clone()))
            .collect();
        return Some(serde_json::json!({ "Fn::If": Value::Array(branches) }));
    }
    Some(match node {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter_map(|(key, value)| {
                    resolve(value, condition, holds).map(|value| (key.clone(), value))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter_map(|item| resolve(item, condition, holds))
                .collect(),
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_tags_become_long_form() {
        let parsed = parse_template(
            "A: !Ref Table\n\
             B: !GetAtt Table.Arn\n\
             C: !Sub arn:${AWS::Partition}:x\n\
             D: !If [Cond, !Ref X, !Ref AWS::NoValue]\n\
             E: !Not [!Equals [!Ref P, \"\"]]\n\
             F: { \"Fn::Sub\": long }\n\
             G: 128\n",
        )
        .unwrap();
        assert_eq!(
            parsed,
            json!({
                "A": {"Ref": "Table"},
                "B": {"Fn::GetAtt": ["Table", "Arn"]},
                "C": {"Fn::Sub": "arn:${AWS::Partition}:x"},
                "D": {"Fn::If": ["Cond", {"Ref": "X"}, {"Ref": "AWS::NoValue"}]},
                "E": {"Fn::Not": [{"Fn::Equals": [{"Ref": "P"}, ""]}]},
                "F": {"Fn::Sub": "long"},
                "G": 128,
            })
        );
    }

    #[test]
    fn statements_are_found_in_both_branches_of_an_if() {
        let template = json!({
            "Resources": {"R": {"Properties": {"PolicyDocument": {"Statement": [
                {"Sid": "a"},
                {"Fn::If": ["C", {"Sid": "b"}, {"Ref": "AWS::NoValue"}]},
                {"Fn::If": ["C", {"Sid": "c"}, {"Sid": "d"}]},
            ]}}}}
        });
        let sids: Vec<&str> = policy_statements(&template)
            .into_iter()
            .map(|(_, statement)| statement["Sid"].as_str().unwrap())
            .collect();
        assert_eq!(sids, ["a", "b", "c", "d"]);
    }

    #[test]
    fn a_getatt_without_an_attribute_is_an_error() {
        assert!(parse_template("A: !GetAtt Table").is_err());
    }

    #[test]
    fn a_decided_condition_keeps_the_branch_taken_and_drops_what_it_guards() {
        let template = json!({
            "Resources": {
                "Always": {"Properties": {
                    "List": ["a", {"Fn::If": ["C", "b", {"Ref": "AWS::NoValue"}]}],
                    "Env": {
                        "ON": {"Fn::If": ["C", "yes", {"Ref": "AWS::NoValue"}]},
                        "OFF": {"Fn::If": ["C", {"Ref": "AWS::NoValue"}, "no"]},
                        "OTHER": {"Fn::If": ["D", "d", {"Ref": "AWS::NoValue"}]},
                    },
                }},
                "Guarded": {"Condition": "C", "Properties": {}},
            },
            "Outputs": {"Out": {"Condition": "C", "Value": "x"}},
        });
        assert_eq!(
            with_condition(&template, "C", true),
            json!({
                "Resources": {
                    "Always": {"Properties": {
                        "List": ["a", "b"],
                        "Env": {"ON": "yes", "OTHER": {"Fn::If": ["D", "d", {"Ref": "AWS::NoValue"}]}},
                    }},
                    "Guarded": {"Condition": "C", "Properties": {}},
                },
                "Outputs": {"Out": {"Condition": "C", "Value": "x"}},
            })
        );
        assert_eq!(
            with_condition(&template, "C", false),
            json!({
                "Resources": {
                    "Always": {"Properties": {
                        "List": ["a"],
                        "Env": {"OFF": "no", "OTHER": {"Fn::If": ["D", "d", {"Ref": "AWS::NoValue"}]}},
                    }},
                },
                "Outputs": {},
            })
        );
    }
}
