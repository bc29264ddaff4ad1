//! Invariants of template.yaml that a deploy would not catch until too late:
//! least privilege, which routes are public, the table's key and TTL, and
//! that the functions get exactly the environment their code reads.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use broker_shared::storage::dynamodb::{PARTITION_KEY, TTL_ATTRIBUTE};
use serde_json::{Value, json};
use template_tests::{
    as_list, get_att, load_template, policy_statements, reference, resources_of_type,
};

const INSTALL_FUNCTION: &str = "InstallCallbackFunction";
const VENDOR_FUNCTION: &str = "TokenVendorFunction";
const HTTP_API: &str = "BrokerHttpApi";
const TABLE: &str = "TokenTable";

/// What functions/install-callback/src/config.rs (`InstallConfig::from_env`,
/// with shared/src/config.rs `http_settings`) reads. The test
/// `install_config_reads_exactly_the_expected_variables` keeps this list
/// honest against the code.
const INSTALL_ENV: &[&str] = &[
    "SHOPTET_OAUTH_URL",
    "SHOPTET_API_URL",
    "SHOPTET_CLIENT_ID",
    "SHOPTET_CLIENT_SECRET_ID",
    "SHOPTET_REDIRECT_URI",
    "SHOPRENTER_OAUTH_URL",
    "SECRET_PREFIX",
    "TOKEN_TABLE",
    "UPSTREAM_TIMEOUT_MS",
    "UPSTREAM_CONNECT_TIMEOUT_MS",
    "INSTALL_DEADLINE_MS",
];

/// What the token vendor's config module (functions/token-vendor) reads,
/// with shared/src/config.rs `http_settings`.
const VENDOR_ENV: &[&str] = &[
    "TOKEN_TABLE",
    "SECRET_PREFIX",
    "SHOPTET_OAUTH_URL",
    "SHOPTET_API_URL",
    "SHOPRENTER_OAUTH_URL",
    "SHOPRENTER_API_URL",
    "SHOPRENTER_CLIENT_ID",
    "SHOPRENTER_CLIENT_SECRET_ID",
    "REFRESH_MARGIN_SECONDS",
    "LEASE_SECONDS",
    "LEASE_WAIT_MS",
    "UPSTREAM_TIMEOUT_MS",
    "UPSTREAM_CONNECT_TIMEOUT_MS",
];

/// The only routes anyone may call without SigV4: (method, path).
const PUBLIC_ROUTES: &[(&str, &str)] = &[("GET", "/shoptet/install")];

fn resource<'a>(template: &'a Value, id: &str) -> &'a Value {
    let resource = &template["Resources"][id];
    assert!(resource.is_object(), "template has no resource {id}");
    resource
}

fn properties<'a>(template: &'a Value, id: &str) -> &'a Value {
    &resource(template, id)["Properties"]
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|name| (*name).to_owned()).collect()
}

fn environment<'a>(template: &'a Value, function: &str) -> &'a serde_json::Map<String, Value> {
    properties(template, function)["Environment"]["Variables"]
        .as_object()
        .unwrap_or_else(|| panic!("{function} has no Environment.Variables"))
}

/// A literal environment value, or the parameter's default for a `Ref` to a
/// parameter that has one.
fn env_value(template: &Value, value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => {
            let parameter = value.get("Ref")?.as_str()?;
            match template["Parameters"][parameter].get("Default")? {
                Value::String(text) if !text.is_empty() => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                _ => None,
            }
        }
    }
}

fn literal_ms(template: &Value, function: &str, variable: &str) -> u64 {
    let value = &environment(template, function)[variable];
    env_value(template, value)
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("{function} {variable} is not a number: {value}"))
}

fn timeout_ms(template: &Value, function: &str) -> u64 {
    properties(template, function)["Timeout"]
        .as_u64()
        .unwrap_or_else(|| panic!("{function} has no numeric Timeout"))
        * 1000
}

// ---- least privilege

#[test]
fn no_policy_statement_allows_a_wildcard_resource_or_action() {
    let template = load_template();
    let statements = policy_statements(&template);
    assert!(
        statements.len() >= 10,
        "expected the roles' and the consumer policy's statements, found {}",
        statements.len()
    );
    for (document, statement) in statements {
        let context = format!("statement {statement} in {document}");
        assert!(
            statement.get("NotResource").is_none(),
            "{context}: NotResource"
        );
        assert!(statement.get("NotAction").is_none(), "{context}: NotAction");
        for action in as_list(statement, "Action") {
            let action = action
                .as_str()
                .unwrap_or_else(|| panic!("{context}: action {action}"));
            assert!(!action.contains('*'), "{context}: wildcard action {action}");
        }
        if statement.get("Principal").is_some() {
            // A trust policy: it names who may assume the role, not resources.
            assert_eq!(
                statement["Principal"],
                json!({"Service": "lambda.amazonaws.com"}),
                "{context}: only Lambda may assume the functions' roles"
            );
            assert_eq!(statement["Action"], "sts:AssumeRole", "{context}");
            continue;
        }
        let resources = as_list(statement, "Resource");
        assert!(!resources.is_empty(), "{context}: no Resource");
        for resource in resources {
            let pattern = match resource {
                Value::String(text) => text.as_str(),
                other => match other.get("Fn::Sub") {
                    Some(Value::String(text)) => text.as_str(),
                    Some(_) => panic!("{context}: use the one-argument Fn::Sub"),
                    // Ref / GetAtt name one resource or a parameter's ARN.
                    None => {
                        assert!(
                            other.get("Ref").is_some() || other.get("Fn::GetAtt").is_some(),
                            "{context}: unexpected resource {other}"
                        );
                        continue;
                    }
                },
            };
            assert_ne!(pattern, "*", "{context}: resource *");
            assert!(
                pattern.starts_with("arn:${AWS::Partition}:"),
                "{context}: resource {pattern} is not an ARN of this partition"
            );
            assert!(
                pattern.contains(":${AWS::Region}:${AWS::AccountId}:"),
                "{context}: {pattern} must name this region and account"
            );
            let after_account = pattern.split(":${AWS::AccountId}:").nth(1).unwrap_or("");
            assert!(
                !after_account.starts_with('*'),
                "{context}: {pattern} matches every resource of the service"
            );
        }
    }
}

#[test]
fn functions_use_the_templates_own_roles_and_no_managed_policies() {
    // SAM's generated roles attach AWSLambdaBasicExecutionRole (logs on "*");
    // each function gets an explicit role written out here instead.
    let template = load_template();
    let functions = resources_of_type(&template, "AWS::Serverless::Function");
    assert_eq!(functions.len(), 2, "{functions:?}");
    for (id, function) in functions {
        let properties = &function["Properties"];
        assert!(
            properties.get("Policies").is_none(),
            "{id}: use its Role, not Policies"
        );
        let role = properties["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: Role must be !GetAtt <role in this template>.Arn"));
        assert_eq!(properties["Role"], get_att(role, "Arn"), "{id}");
        assert_eq!(
            resource(&template, role)["Type"],
            "AWS::IAM::Role",
            "{id}: {role}"
        );
    }
    for (id, role) in resources_of_type(&template, "AWS::IAM::Role") {
        assert!(
            role["Properties"].get("ManagedPolicyArns").is_none(),
            "{id}: managed policies are not written out here"
        );
        assert!(
            role["Properties"].get("PermissionsBoundary").is_none(),
            "{id}: unexpected boundary"
        );
    }
}

fn role_statements<'a>(template: &'a Value, role: &str) -> BTreeMap<String, &'a Value> {
    let mut statements = BTreeMap::new();
    for policy in properties(template, role)["Policies"].as_array().unwrap() {
        for (_, statement) in policy_statements(&policy["PolicyDocument"]) {
            let sid = statement["Sid"]
                .as_str()
                .expect("every statement has a Sid");
            statements.insert(sid.to_owned(), statement);
        }
    }
    statements
}

fn actions(statement: &Value) -> BTreeSet<String> {
    as_list(statement, "Action")
        .into_iter()
        .map(|action| action.as_str().unwrap().to_owned())
        .collect()
}

fn secret_prefix_arn() -> Value {
    json!({"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretPrefix}*"})
}

#[test]
fn install_role_writes_only_prefixed_secrets_and_deletes_table_items() {
    let template = load_template();
    let function_role = properties(&template, INSTALL_FUNCTION)["Role"].clone();
    assert_eq!(function_role, get_att("InstallCallbackRole", "Arn"));
    let statements = role_statements(&template, "InstallCallbackRole");
    let granted: BTreeMap<&str, (BTreeSet<String>, Value)> = statements
        .iter()
        .map(|(sid, statement)| {
            (
                sid.as_str(),
                (actions(statement), statement["Resource"].clone()),
            )
        })
        .collect();
    let expected: BTreeMap<&str, (BTreeSet<String>, Value)> = BTreeMap::from([
        (
            "WriteOwnLogs",
            (
                names(&["logs:CreateLogStream", "logs:PutLogEvents"]),
                get_att("InstallCallbackLogGroup", "Arn"),
            ),
        ),
        (
            "StoreInstallationSecrets",
            (
                names(&[
                    "secretsmanager:CreateSecret",
                    "secretsmanager:PutSecretValue",
                    "secretsmanager:TagResource",
                    "secretsmanager:DescribeSecret",
                ]),
                secret_prefix_arn(),
            ),
        ),
        (
            "DropCachedTokens",
            (names(&["dynamodb:DeleteItem"]), get_att(TABLE, "Arn")),
        ),
        (
            "ReadShoptetClientSecret",
            (
                names(&["secretsmanager:GetSecretValue"]),
                reference("ShoptetClientSecretArn"),
            ),
        ),
    ]);
    assert_eq!(granted, expected);
    assert_conditional(
        &template,
        "InstallCallbackRole",
        "ReadShoptetClientSecret",
        "HasShoptetClientSecret",
    );
}

#[test]
fn vendor_role_reads_only_prefixed_secrets_and_uses_only_its_table() {
    let template = load_template();
    assert_eq!(
        properties(&template, VENDOR_FUNCTION)["Role"],
        get_att("TokenVendorRole", "Arn")
    );
    let statements = role_statements(&template, "TokenVendorRole");
    let granted: BTreeMap<&str, (BTreeSet<String>, Value)> = statements
        .iter()
        .map(|(sid, statement)| {
            (
                sid.as_str(),
                (actions(statement), statement["Resource"].clone()),
            )
        })
        .collect();
    let expected: BTreeMap<&str, (BTreeSet<String>, Value)> = BTreeMap::from([
        (
            "WriteOwnLogs",
            (
                names(&["logs:CreateLogStream", "logs:PutLogEvents"]),
                get_att("TokenVendorLogGroup", "Arn"),
            ),
        ),
        (
            "ReadInstallationSecrets",
            (
                names(&["secretsmanager:GetSecretValue"]),
                secret_prefix_arn(),
            ),
        ),
        (
            "CacheTokensAndLeases",
            (
                names(&[
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                ]),
                get_att(TABLE, "Arn"),
            ),
        ),
        (
            "ReadShoprenterClientSecret",
            (
                names(&["secretsmanager:GetSecretValue"]),
                reference("ShoprenterClientSecretArn"),
            ),
        ),
    ]);
    assert_eq!(granted, expected);
    assert_conditional(
        &template,
        "TokenVendorRole",
        "ReadShoprenterClientSecret",
        "HasShoprenterClientSecret",
    );
}

/// The statement `sid` of `role` exists only under `condition`, which holds
/// only when the parameter is set, and the other branch is no statement.
fn assert_conditional(template: &Value, role: &str, sid: &str, condition: &str) {
    let policies = properties(template, role)["Policies"].as_array().unwrap();
    let guarded = policies
        .iter()
        .flat_map(|policy| policy["PolicyDocument"]["Statement"].as_array().unwrap())
        .find(|item| item["Fn::If"][1]["Sid"] == sid)
        .unwrap_or_else(|| panic!("{role}: {sid} must sit in an Fn::If"));
    assert_eq!(guarded["Fn::If"][0], condition, "{role}: {sid}");
    assert_eq!(
        guarded["Fn::If"][2],
        reference("AWS::NoValue"),
        "{role}: {sid}"
    );
    let parameter = guarded["Fn::If"][1]["Resource"]["Ref"].as_str().unwrap();
    assert_eq!(
        template["Conditions"][condition],
        json!({"Fn::Not": [{"Fn::Equals": [reference(parameter), ""]}]}),
        "{condition} must mean: {parameter} is set"
    );
}

#[test]
fn consumer_policy_allows_only_the_vendor_and_the_token_routes() {
    let template = load_template();
    let policies = resources_of_type(&template, "AWS::IAM::ManagedPolicy");
    assert_eq!(policies.len(), 1, "{policies:?}");
    let (id, policy) = policies[0];
    let statements = policy_statements(&policy["Properties"]["PolicyDocument"]);
    let granted: Vec<(BTreeSet<String>, Vec<&Value>)> = statements
        .iter()
        .map(|(_, statement)| (actions(statement), as_list(statement, "Resource")))
        .collect();
    let route = |method: &str| {
        json!({"Fn::Sub": format!(
            "arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{HTTP_API}}}/*/{method}/tokens/*"
        )})
    };
    assert_eq!(
        granted,
        vec![
            (
                names(&["lambda:InvokeFunction"]),
                vec![&get_att(VENDOR_FUNCTION, "Arn")]
            ),
            (
                names(&["execute-api:Invoke"]),
                vec![&route("GET"), &route("POST")]
            ),
        ],
        "{id}"
    );
    assert_eq!(
        template["Outputs"]["TokenConsumerPolicyArn"]["Value"],
        reference(id)
    );
}

// ---- routes

struct Route {
    function: String,
    method: String,
    path: String,
    authorizer: Option<String>,
}

fn routes(template: &Value) -> Vec<Route> {
    let mut routes = Vec::new();
    for (function, resource) in resources_of_type(template, "AWS::Serverless::Function") {
        let properties = &resource["Properties"];
        assert!(
            properties.get("FunctionUrlConfig").is_none(),
            "{function}: a Function URL would bypass the API's IAM auth"
        );
        let Some(events) = properties.get("Events").and_then(Value::as_object) else {
            continue;
        };
        for (name, event) in events {
            assert_eq!(
                event["Type"], "HttpApi",
                "{function}.{name}: only HttpApi events"
            );
            let event = &event["Properties"];
            // Without ApiId the route lands on SAM's implicit API, which has
            // no default authorizer: public.
            assert_eq!(
                event["ApiId"],
                reference(HTTP_API),
                "{function}.{name}: ApiId"
            );
            routes.push(Route {
                function: function.to_owned(),
                method: event["Method"].as_str().unwrap().to_uppercase(),
                path: event["Path"].as_str().unwrap().to_owned(),
                authorizer: event["Auth"]["Authorizer"].as_str().map(str::to_owned),
            });
        }
    }
    routes
}

#[test]
fn the_api_requires_iam_by_default() {
    let template = load_template();
    let apis = resources_of_type(&template, "AWS::Serverless::HttpApi");
    assert_eq!(apis.len(), 1, "one HTTP API");
    assert_eq!(apis[0].0, HTTP_API);
    let auth = &apis[0].1["Properties"]["Auth"];
    assert_eq!(auth["DefaultAuthorizer"], "AWS_IAM");
    assert_eq!(auth["EnableIamAuthorizer"], true);
    for kind in [
        "AWS::Serverless::Api",
        "AWS::ApiGatewayV2::Api",
        "AWS::Lambda::Url",
        "AWS::Lambda::Permission",
    ] {
        assert!(
            resources_of_type(&template, kind).is_empty(),
            "unexpected {kind}"
        );
    }
}

#[test]
fn only_the_shoptet_install_route_is_public() {
    let template = load_template();
    let routes = routes(&template);
    let table: BTreeSet<(String, String, String)> = routes
        .iter()
        .map(|route| {
            (
                route.method.clone(),
                route.path.clone(),
                route.function.clone(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, String)> = [
        ("GET", "/shoptet/install", INSTALL_FUNCTION),
        ("PUT", "/shoprenter/{shop}/credentials", INSTALL_FUNCTION),
        ("GET", "/tokens/{platform}/{shop}", VENDOR_FUNCTION),
        ("POST", "/tokens/{platform}/{shop}", VENDOR_FUNCTION),
    ]
    .into_iter()
    .map(|(method, path, function)| (method.to_owned(), path.to_owned(), function.to_owned()))
    .collect();
    assert_eq!(table, expected);
    assert_eq!(routes.len(), expected.len(), "a route is declared twice");

    for route in &routes {
        let public = PUBLIC_ROUTES.contains(&(route.method.as_str(), route.path.as_str()));
        match (public, route.authorizer.as_deref()) {
            (true, Some("NONE")) => {}
            (true, other) => panic!(
                "{} {} must be public (Authorizer: NONE), has {other:?}",
                route.method, route.path
            ),
            // The API's default authorizer (AWS_IAM) applies.
            (false, None | Some("AWS_IAM")) => {}
            (false, Some(other)) => panic!(
                "{} {} must use IAM, has Authorizer {other}",
                route.method, route.path
            ),
        }
        if route.path.starts_with("/tokens/") || route.path.ends_with("/credentials") {
            assert!(
                !public,
                "{} {} must not be public",
                route.method, route.path
            );
        }
    }
}

#[test]
fn outputs_name_the_install_url_the_vendor_and_the_table() {
    let template = load_template();
    let outputs = &template["Outputs"];
    let base = "https://${BrokerHttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}";
    assert_eq!(outputs["ApiBaseUrl"]["Value"], json!({"Fn::Sub": base}));
    let (_, install_path) = PUBLIC_ROUTES[0];
    assert_eq!(
        outputs["InstallCallbackUrl"]["Value"],
        json!({"Fn::Sub": format!("{base}{install_path}")})
    );
    assert_eq!(
        outputs["TokenVendorFunctionArn"]["Value"],
        get_att(VENDOR_FUNCTION, "Arn")
    );
    assert_eq!(
        outputs["TokenVendorFunctionName"]["Value"],
        reference(VENDOR_FUNCTION)
    );
    assert_eq!(outputs["TokenTableName"]["Value"], reference(TABLE));
    assert!(outputs["TokenConsumerPolicyArn"]["Value"].is_object());
}

// ---- table

#[test]
fn table_is_keyed_and_expires_items_the_way_the_code_writes_them() {
    let template = load_template();
    assert_eq!(resource(&template, TABLE)["Type"], "AWS::DynamoDB::Table");
    let table = properties(&template, TABLE);
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}])
    );
    assert_eq!(
        table["AttributeDefinitions"],
        json!([{"AttributeName": PARTITION_KEY, "AttributeType": "S"}])
    );
    assert_eq!(
        table["TimeToLiveSpecification"],
        json!({"AttributeName": TTL_ATTRIBUTE, "Enabled": true})
    );
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["PointInTimeRecoverySpecification"],
        json!({"PointInTimeRecoveryEnabled": true})
    );
    assert_eq!(
        table["DeletionProtectionEnabled"],
        json!({"Fn::If": ["ProtectTable", true, false]})
    );
    assert_eq!(
        template["Conditions"]["ProtectTable"],
        json!({"Fn::Equals": [reference("TableDeletionProtection"), "true"]})
    );
    for function in [INSTALL_FUNCTION, VENDOR_FUNCTION] {
        assert_eq!(
            environment(&template, function)["TOKEN_TABLE"],
            reference(TABLE),
            "{function}"
        );
    }
}

// ---- functions and their environment

#[test]
fn functions_are_arm64_rust_on_al2023() {
    let template = load_template();
    let expected_binaries = [
        (INSTALL_FUNCTION, "install-callback"),
        (VENDOR_FUNCTION, "token-vendor"),
    ];
    for (function, binary) in expected_binaries {
        let resource = resource(&template, function);
        assert_eq!(resource["Type"], "AWS::Serverless::Function");
        assert_eq!(
            resource["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{function}"
        );
        assert_eq!(
            resource["Metadata"]["BuildProperties"]["Binary"], binary,
            "{function}"
        );
        let properties = &resource["Properties"];
        assert_eq!(properties["Runtime"], "provided.al2023", "{function}");
        assert_eq!(properties["Handler"], "bootstrap", "{function}");
        assert_eq!(properties["Architectures"], json!(["arm64"]), "{function}");
        assert_eq!(properties["MemorySize"], 128, "{function}");
        assert_eq!(
            properties["CodeUri"], ".",
            "{function}: built from the workspace root"
        );
        let logging = &properties["LoggingConfig"];
        assert_eq!(logging["LogFormat"], "JSON", "{function}");
        assert_eq!(
            logging["ApplicationLogLevel"],
            reference("LogLevel"),
            "{function}"
        );
    }
    assert!(
        template.get("Globals").is_none(),
        "properties are written per function"
    );
}

#[test]
fn install_function_answers_within_shoptets_five_seconds() {
    let template = load_template();
    let deadline = literal_ms(&template, INSTALL_FUNCTION, "INSTALL_DEADLINE_MS");
    let upstream = literal_ms(&template, INSTALL_FUNCTION, "UPSTREAM_TIMEOUT_MS");
    assert!(deadline < 5_000, "INSTALL_DEADLINE_MS {deadline}");
    assert!(
        upstream < deadline,
        "UPSTREAM_TIMEOUT_MS {upstream} vs deadline {deadline}"
    );
    let timeout = timeout_ms(&template, INSTALL_FUNCTION);
    assert!(
        timeout > deadline,
        "Lambda Timeout {timeout} ms must exceed the deadline {deadline}"
    );
    assert!(
        timeout <= 10_000,
        "a hung install is cut off quickly: {timeout} ms"
    );
}

#[test]
fn vendor_timeout_covers_a_lease_wait_and_an_upstream_call() {
    let template = load_template();
    let wait = literal_ms(&template, VENDOR_FUNCTION, "LEASE_WAIT_MS");
    let upstream = literal_ms(&template, VENDOR_FUNCTION, "UPSTREAM_TIMEOUT_MS");
    let timeout = timeout_ms(&template, VENDOR_FUNCTION);
    assert!(
        timeout > wait + upstream,
        "Timeout {timeout} ms vs {wait} + {upstream}"
    );
}

#[test]
fn environment_names_match_what_the_code_reads() {
    let template = load_template();
    for (function, expected) in [
        (INSTALL_FUNCTION, INSTALL_ENV),
        (VENDOR_FUNCTION, VENDOR_ENV),
    ] {
        let actual: BTreeSet<String> = environment(&template, function).keys().cloned().collect();
        assert_eq!(actual, names(expected), "{function}");
    }
}

#[test]
fn environment_refs_name_existing_parameters_or_resources() {
    let template = load_template();
    for function in [INSTALL_FUNCTION, VENDOR_FUNCTION] {
        for (variable, value) in environment(&template, function) {
            match value {
                Value::String(_) => {}
                other => {
                    let target = other["Ref"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{function} {variable}: literal or Ref only"));
                    assert!(
                        template["Parameters"].get(target).is_some()
                            || template["Resources"].get(target).is_some(),
                        "{function} {variable}: Ref {target} names nothing"
                    );
                }
            }
        }
    }
}

/// Environment the way Lambda would see it from the template: literals as
/// written, parameters at their defaults (or `overrides`), sample values for
/// parameters without a default. Records every variable the code asks for.
struct TemplateEnv<'a> {
    template: &'a Value,
    variables: &'a serde_json::Map<String, Value>,
    overrides: BTreeMap<String, String>,
    read: RefCell<BTreeSet<String>>,
}

impl<'a> TemplateEnv<'a> {
    fn new(template: &'a Value, function: &str) -> Self {
        Self {
            template,
            variables: environment(template, function),
            overrides: BTreeMap::new(),
            read: RefCell::new(BTreeSet::new()),
        }
    }

    fn get(&self, variable: &str) -> Option<String> {
        self.read.borrow_mut().insert(variable.to_owned());
        let value = self.variables.get(variable)?;
        if let Some(parameter) = value.get("Ref").and_then(Value::as_str)
            && let Some(value) = self.overrides.get(parameter)
        {
            return Some(value.clone());
        }
        env_value(self.template, value).or_else(|| sample(variable).map(str::to_owned))
    }
}

/// Values for the parameters a deployer must fill in (no default).
fn sample(variable: &str) -> Option<&'static str> {
    Some(match variable {
        "SHOPTET_OAUTH_URL" => "https://12345.myshoptet.com",
        "SHOPTET_CLIENT_ID" => "client-id",
        "SHOPTET_CLIENT_SECRET_ID" => {
            "arn:aws:secretsmanager:eu-central-1:123456789012:secret:addon-AbCdEf"
        }
        "SHOPTET_REDIRECT_URI" => {
            "https://abc123.execute-api.eu-central-1.amazonaws.com/shoptet/install"
        }
        "TOKEN_TABLE" => "stack-TokenTable-ABC",
        _ => return None,
    })
}

fn load_install(env: &TemplateEnv) -> Result<(), String> {
    install_callback::InstallConfig::from_env(&|variable: &str| env.get(variable))
        .map(|config| assert!(config.install_deadline.as_millis() < 5_000))
        .map_err(|error| error.to_string())
}

fn load_vendor(env: &TemplateEnv) -> Result<(), String> {
    token_vendor::VendorConfig::from_env(&|variable: &str| env.get(variable))
        .map(|config| assert!(config.shoptet_oauth_url.is_some()))
        .map_err(|error| error.to_string())
}

type Loader = fn(&TemplateEnv) -> Result<(), String>;

const LOADERS: [(&str, &[&str], Loader); 2] = [
    (INSTALL_FUNCTION, INSTALL_ENV, load_install),
    (VENDOR_FUNCTION, VENDOR_ENV, load_vendor),
];

/// Runs each function's real configuration loader on the template's
/// environment: it accepts it and reads exactly the expected variables.
#[test]
fn config_loaders_accept_the_template_and_read_exactly_the_expected_variables() {
    let template = load_template();
    for (function, expected, load) in LOADERS {
        let env = TemplateEnv::new(&template, function);
        load(&env).unwrap_or_else(|error| panic!("{function} rejects the template: {error}"));
        assert_eq!(env.read.into_inner(), names(expected), "{function}");
    }
}

/// Every value a numeric parameter allows is one the code accepts.
#[test]
fn config_loaders_accept_every_bound_of_the_numeric_parameters() {
    let template = load_template();
    let mut checked = 0;
    for (function, _, load) in LOADERS {
        for value in environment(&template, function).values() {
            let Some(parameter) = value.get("Ref").and_then(Value::as_str) else {
                continue;
            };
            let declaration = &template["Parameters"][parameter];
            if declaration["Type"] != "Number" {
                continue;
            }
            for bound in ["MinValue", "MaxValue"] {
                let limit = &declaration[bound];
                assert!(limit.is_number(), "{parameter} has no {bound}");
                let mut env = TemplateEnv::new(&template, function);
                env.overrides
                    .insert(parameter.to_owned(), limit.to_string());
                load(&env).unwrap_or_else(|error| {
                    panic!("{function} rejects {parameter} = {bound} {limit}: {error}")
                });
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 4,
        "RefreshMarginSeconds and LeaseSeconds bounds: {checked}"
    );
}
