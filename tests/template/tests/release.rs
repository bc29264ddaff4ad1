//! What a release needs besides the code: the Serverless Application
//! Repository metadata in template.yaml within SAR's documented limits, the
//! files it names present, and one version in the template, the published
//! crates and CHANGELOG.md.

use std::path::Path;

use serde_json::Value;
use template_tests::load_template;

fn repository_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

fn application(template: &Value) -> &Value {
    let application = &template["Metadata"]["AWS::ServerlessRepo::Application"];
    assert!(
        application.is_object(),
        "template.yaml has no Metadata.AWS::ServerlessRepo::Application"
    );
    application
}

fn field<'a>(application: &'a Value, name: &str) -> &'a str {
    application[name].as_str().unwrap_or_else(|| {
        panic!("AWS::ServerlessRepo::Application.{name} must be a literal string (SAR reads no intrinsic function)")
    })
}

/// SAR's Author pattern `^[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?$`.
fn is_sar_author(author: &str) -> bool {
    !author.is_empty()
        && author.len() <= 127
        && author
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !author.starts_with('-')
        && !author.ends_with('-')
        && !author.contains("--")
}

/// `"version = \"…\""` of a crate's manifest.
fn crate_version(manifest: &str) -> String {
    repository_file(manifest)
        .lines()
        .find_map(|line| line.strip_prefix("version = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{manifest} has no version line"))
        .to_owned()
}

#[test]
fn the_serverless_application_repository_metadata_is_within_sars_limits() {
    let template = load_template();
    let application = application(&template);
    for required in ["Name", "Description", "Author"] {
        assert!(
            !field(application, required).is_empty(),
            "{required} is required"
        );
    }
    let name = field(application, "Name");
    assert!(name.len() <= 140 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    assert!(field(application, "Description").len() <= 256);
    assert!(is_sar_author(field(application, "Author")));
    assert_eq!(field(application, "SpdxLicenseId"), "Apache-2.0");
    let labels = application["Labels"].as_array().expect("Labels is a list");
    assert!((1..=10).contains(&labels.len()), "SAR takes 1 to 10 labels");
    for label in labels {
        let label = label.as_str().expect("a label is a string");
        assert!(
            (1..=127).contains(&label.len())
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-_:/@".contains(c)),
            "label {label:?} is outside SAR's pattern"
        );
    }
    for url in ["HomePageUrl", "SourceCodeUrl"] {
        assert!(field(application, url).starts_with("https://"), "{url}");
    }
}

#[test]
fn the_license_and_readme_the_metadata_names_are_in_the_repository() {
    let template = load_template();
    let application = application(&template);
    let license = repository_file(field(application, "LicenseUrl"));
    assert!(license.contains("Apache License") && license.contains("Version 2.0, January 2004"));
    assert!(repository_file(field(application, "ReadmeUrl")).starts_with("# shop-token-broker"));
    // The crates declare the same license as the stack.
    assert!(repository_file("Cargo.toml").contains("license = \"Apache-2.0\""));
}

#[test]
fn the_stack_the_published_crates_and_the_changelog_carry_one_version() {
    let template = load_template();
    let version = field(application(&template), "SemanticVersion");
    for manifest in ["client/Cargo.toml", "shared/protocol/Cargo.toml"] {
        assert_eq!(crate_version(manifest), version, "{manifest}");
    }
    let changelog = repository_file("CHANGELOG.md");
    assert!(
        changelog.contains("## [Unreleased]"),
        "CHANGELOG.md keeps an Unreleased section"
    );
    assert!(
        changelog.contains(&format!("## [{version}] - ")),
        "CHANGELOG.md has no section for {version}, the template's SemanticVersion"
    );
}
