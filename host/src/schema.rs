//! A database's schema as facts to compare, whatever the engine: the
//! tables, columns, types, constraints, keys, indexes, views and triggers,
//! each object a set of named facts. An engine reads them
//! ([`crate::engine::sqlite::schema`] for SQLite); this module compares two
//! schemas and says what differs in words an operator can act on.
//!
//! Two users: `uplift verify-paths` (an upgraded database against a fresh
//! install) and `uplift adopt` (a database uplift did not create against
//! what a release's migrations build).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// One object of a schema: a table, an index, a view or a trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaObject {
    /// The table it belongs to (a table's own name for a table).
    pub table: String,
    /// Its facts: subject (`column email`, `unique (a, b)`) → detail.
    pub facts: BTreeMap<String, String>,
}

/// A database's schema, normalised for comparison: objects by kind and
/// name (`table learner`, `index learner_email`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    objects: BTreeMap<String, SchemaObject>,
}

impl Schema {
    /// Adds an object of `kind` (`table`, `index`, `view`, `trigger`).
    pub fn insert(&mut self, kind: &str, name: &str, object: SchemaObject) {
        self.objects.insert(format!("{kind} {name}"), object);
    }

    /// The objects' names, by kind: `table learner`.
    pub fn names(&self) -> Vec<String> {
        self.objects.keys().cloned().collect()
    }

    /// Whether the schema has no object.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// What `actual` lacks, has in addition, or has differently, compared
    /// with this (expected) schema; empty when they are the same.
    pub fn compare(&self, actual: &Schema) -> Vec<SchemaDifference> {
        let mut out = Vec::new();
        for (object, expected) in &self.objects {
            match actual.objects.get(object) {
                None => out.push(SchemaDifference::Missing {
                    object: object.clone(),
                }),
                Some(found) if found.facts != expected.facts => {
                    out.push(SchemaDifference::Differs {
                        object: object.clone(),
                        facts: compare_facts(&expected.facts, &found.facts),
                    })
                }
                Some(_) => {}
            }
        }
        for object in actual.objects.keys() {
            if !self.objects.contains_key(object) {
                out.push(SchemaDifference::Extra {
                    object: object.clone(),
                });
            }
        }
        out
    }

    /// How far `actual` is from this schema: each fact that differs, and
    /// each fact of an object only one of them has (plus one for the
    /// object). 0 when they are the same; a missing table weighs more than
    /// a column of a different type.
    pub fn distance(&self, actual: &Schema) -> usize {
        let only = |object: &SchemaObject| object.facts.len() + 1;
        let mut distance = 0;
        for (key, expected) in &self.objects {
            distance += match actual.objects.get(key) {
                None => only(expected),
                Some(found) => compare_facts(&expected.facts, &found.facts).len(),
            };
        }
        for (key, found) in &actual.objects {
            if !self.objects.contains_key(key) {
                distance += only(found);
            }
        }
        distance
    }

    /// What `actual` has differently from this fresh install's schema, in
    /// `verify-paths`' words.
    pub fn differences(&self, actual: &Schema) -> Vec<String> {
        self.compare(actual)
            .iter()
            .map(|d| d.describe("a fresh install", "the upgraded database"))
            .collect()
    }

    /// Removes objects whose names start with any of `prefixes` (tables that
    /// plugins own and create on some upgrade paths only).
    pub fn without_prefixes(self, prefixes: &[String]) -> Schema {
        self.without(|name| prefixes.iter().any(|p| name.starts_with(p.as_str())))
    }

    /// Removes the objects for which `leave_out` holds of their own name or
    /// of their table's (an index, view or trigger of a table left out goes
    /// with it); returns the schema without them.
    pub fn without(mut self, leave_out: impl Fn(&str) -> bool) -> Schema {
        self.objects.retain(|key, object| {
            let name = key.split_once(' ').map_or(key.as_str(), |(_, n)| n);
            !leave_out(name) && !leave_out(&object.table)
        });
        self
    }

    /// The objects only `actual` has whose name or table `matches`, taken
    /// out of `actual`: they are not differences but belong elsewhere
    /// (a plugin's tables). Returns their names (`table badges_award`).
    pub fn take_extras(&self, actual: &mut Schema, matches: impl Fn(&str) -> bool) -> Vec<String> {
        let taken: Vec<String> = actual
            .objects
            .iter()
            .filter(|(key, object)| {
                let name = key.split_once(' ').map_or(key.as_str(), |(_, n)| n);
                !self.objects.contains_key(*key) && (matches(name) || matches(&object.table))
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in &taken {
            actual.objects.remove(key);
        }
        taken
    }
}

/// One way two schemas differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SchemaDifference {
    /// The expected schema has the object; the actual one does not.
    Missing {
        /// `table learner`, `index learner_email`.
        object: String,
    },
    /// The actual schema has an object the expected one does not.
    Extra {
        /// `table learner`, `index learner_email`.
        object: String,
    },
    /// Both have the object, with different facts.
    Differs {
        /// `table learner`, `index learner_email`.
        object: String,
        /// Each fact that differs.
        facts: Vec<FactDifference>,
    },
}

/// One fact of an object that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactDifference {
    /// `column email`, `unique (a, b)`, `foreign key (learner_id)`.
    pub subject: String,
    /// What the expected schema says of it; `None` when it lacks it.
    pub expected: Option<String>,
    /// What the actual schema says of it; `None` when it lacks it.
    pub actual: Option<String>,
}

impl SchemaDifference {
    /// The difference in words, naming the two sides `expected` and
    /// `actual` (`release 0.6.4`, `this database`).
    pub fn describe(&self, expected: &str, actual: &str) -> String {
        match self {
            SchemaDifference::Missing { object } => {
                format!("{object} is missing: {expected} has it")
            }
            SchemaDifference::Extra { object } => {
                format!("{object} is in {actual} but not in {expected}")
            }
            SchemaDifference::Differs { object, facts } => {
                let parts: Vec<String> =
                    facts.iter().map(|f| f.describe(expected, actual)).collect();
                format!("{object}: {}", parts.join("; "))
            }
        }
    }
}

impl FactDifference {
    fn describe(&self, expected: &str, actual: &str) -> String {
        let subject = &self.subject;
        match (&self.expected, &self.actual) {
            (Some(e), None) => format!("{subject} is missing ({expected} has {}{e})", lead(e)),
            (None, Some(a)) => format!("{subject} is extra ({actual} has {}{a})", lead(a)),
            (Some(e), Some(a)) => format!("{subject} is {a} in {actual} but {e} in {expected}"),
            (None, None) => format!("{subject} differs"),
        }
    }
}

/// `it as ` before a non-empty detail, so that a bare fact reads well.
fn lead(detail: &str) -> &'static str {
    if detail.is_empty() { "it" } else { "it as " }
}

impl fmt::Display for SchemaDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe("the expected schema", "the actual schema"))
    }
}

fn compare_facts(
    expected: &BTreeMap<String, String>,
    actual: &BTreeMap<String, String>,
) -> Vec<FactDifference> {
    let mut subjects: Vec<&String> = expected.keys().chain(actual.keys()).collect();
    subjects.sort();
    subjects.dedup();
    subjects
        .into_iter()
        .filter_map(|subject| {
            let (e, a) = (expected.get(subject), actual.get(subject));
            (e != a).then(|| FactDifference {
                subject: subject.clone(),
                expected: e.cloned(),
                actual: a.cloned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(facts: &[(&str, &str)]) -> SchemaObject {
        SchemaObject {
            table: "t".into(),
            facts: facts
                .iter()
                .map(|(s, d)| (s.to_string(), d.to_string()))
                .collect(),
        }
    }

    #[test]
    fn each_kind_of_difference_is_named_with_both_sides() {
        let mut expected = Schema::default();
        expected.insert(
            "table",
            "t",
            table(&[("column a", "INTEGER"), ("column b", "TEXT NOT NULL")]),
        );
        expected.insert("index", "t_a", table(&[]));
        let mut actual = Schema::default();
        actual.insert(
            "table",
            "t",
            table(&[
                ("column a", "INTEGER"),
                ("column b", "TEXT"),
                ("column c", "TEXT"),
            ]),
        );
        actual.insert("view", "v", table(&[]));
        let words: Vec<String> = expected
            .compare(&actual)
            .iter()
            .map(|d| d.describe("release 1.0.0", "this database"))
            .collect();
        assert_eq!(
            words,
            [
                "index t_a is missing: release 1.0.0 has it",
                "table t: column b is TEXT in this database but TEXT NOT NULL in release 1.0.0; \
                 column c is extra (this database has it as TEXT)",
                "view v is in this database but not in release 1.0.0",
            ]
        );
    }

    #[test]
    fn leaving_a_table_out_leaves_out_its_indexes() {
        let mut schema = Schema::default();
        schema.insert("table", "cache_pages", table(&[]));
        schema.insert(
            "index",
            "by_key",
            SchemaObject {
                table: "cache_pages".into(),
                facts: BTreeMap::new(),
            },
        );
        schema.insert("table", "learner", table(&[]));
        let left = schema.without(|name| name.starts_with("cache_"));
        assert_eq!(left.objects.len(), 1);
        assert!(left.objects.contains_key("table learner"));
    }

    #[test]
    fn extras_that_belong_elsewhere_are_taken_out_but_expected_objects_stay() {
        let mut expected = Schema::default();
        expected.insert("table", "badges_rules", table(&[]));
        let mut actual = Schema::default();
        actual.insert("table", "badges_rules", table(&[("column x", "TEXT")]));
        actual.insert("table", "badges_award", table(&[]));
        let taken = expected.take_extras(&mut actual, |n| n.starts_with("badges_"));
        assert_eq!(taken, ["table badges_award"]);
        assert_eq!(
            expected.compare(&actual).len(),
            1,
            "the expected table is still compared"
        );
    }
}
