//! The ready-made Genesys Cloud data actions in `deploy/genesys-cloud/actions/`, run against the
//! real service the way Genesys Cloud runs them: the request templates rendered (the Velocity subset
//! they use), the custom auth action's answer as `authResponse`, the translation map and success
//! template applied, and the result checked against each action's output contract.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use base64::Engine;
use serde_json::{Value, json};

use crate::both_stores;
use crate::helpers::{StoreKind, TestApp, assert_valid, first_code, spawn_app_with, wrong_code};
use crate::oauth::{CLIENT, SECRET, oauth_settings};

/// The base URL the action files carry until an admin (or the Terraform module) replaces it.
const PLACEHOLDER: &str = "https://twofactor.example.com";
const CONVERSATION: &str = "6f1c2b9a-0d3e-4f5a-8b7c-1e2d3c4b5a69";

fn actions_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/genesys-cloud/actions")
}

/// Every action file of a variant (`basic` or `oauth`), by file stem.
fn load(variant: &str) -> HashMap<String, Value> {
    let dir = actions_dir().join(variant);
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let action: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        out.insert(stem, action);
    }
    out
}

/// What the Velocity templates of the actions may reference.
#[derive(Default)]
struct Context {
    input: Value,
    credentials: HashMap<&'static str, String>,
    auth_response: Value,
}

/// Renders the Velocity subset the action files use: `${input.X}`, `${credentials.X}`,
/// `${authResponse.X}`, `$esc.jsonString(…)` and `$encoding.base64("…")`. Anything else left over
/// fails the test, so a template cannot use a construct this check does not understand.
fn render(template: &str, ctx: &Context) -> String {
    let reference =
        regex::Regex::new(r"\$\{(input|credentials|authResponse)\.([A-Za-z0-9_]+)\}").unwrap();
    let value_of = |ns: &str, name: &str| -> String {
        let v = match ns {
            "input" => ctx.input.get(name).cloned(),
            "credentials" => ctx.credentials.get(name).map(|s| json!(s)),
            _ => ctx.auth_response.get(name).cloned(),
        }
        .unwrap_or_else(|| panic!("{template}: ${{{ns}.{name}}} has no value"));
        match v {
            Value::String(s) => s,
            other => other.to_string(),
        }
    };
    let escaped =
        regex::Regex::new(r"\$esc\.jsonString\(\$\{(input)\.([A-Za-z0-9_]+)\}\)").unwrap();
    let text = escaped.replace_all(template, |c: &regex::Captures| {
        let s = serde_json::to_string(&value_of(&c[1], &c[2])).unwrap();
        s[1..s.len() - 1].to_string()
    });
    let text = reference.replace_all(&text, |c: &regex::Captures| value_of(&c[1], &c[2]));
    let base64 = regex::Regex::new(r#"\$encoding\.base64\("([^"]*)"\)"#).unwrap();
    let text = base64.replace_all(&text, |c: &regex::Captures| {
        base64::engine::general_purpose::STANDARD.encode(&c[1])
    });
    assert!(
        !text.contains('$'),
        "{template} uses a construct this check does not render: {text}"
    );
    text.into_owned()
}

/// The `${input.X}` names a template references.
fn input_names(template: &str) -> BTreeSet<String> {
    regex::Regex::new(r"\$\{input\.([A-Za-z0-9_]+)\}")
        .unwrap()
        .captures_iter(template)
        .map(|c| c[1].to_string())
        .collect()
}

/// Which JSONPaths of translation maps were found in real answers, to show at the end that every
/// one of them names a field the service really sends.
type Seen = BTreeSet<String>;

/// Runs `action` as Genesys Cloud would: the output (after translation) or the HTTP status when
/// the service refused (the action's failure path).
async fn execute(
    app: &TestApp,
    action: &Value,
    ctx: &Context,
    basic: Option<(&str, &str)>,
    seen: &mut Seen,
) -> Result<Value, u16> {
    let name = action["name"].as_str().unwrap();
    assert_valid(
        &action["contract"]["input"]["inputSchema"],
        &ctx.input,
        &format!("{name} input contract"),
    );
    let request = &action["config"]["request"];
    let url = render(request["requestUrlTemplate"].as_str().unwrap(), ctx)
        .replace(PLACEHOLDER, &app.address);
    let method =
        reqwest::Method::from_bytes(request["requestType"].as_str().unwrap().as_bytes()).unwrap();
    let mut req = app.client.request(method, &url);
    for (header, value) in request["headers"].as_object().unwrap() {
        req = req.header(header, render(value.as_str().unwrap(), ctx));
    }
    if let Some((user, password)) = basic {
        // What a Basic Auth credential makes Genesys Cloud add to every request.
        req = req.basic_auth(user, Some(password));
    }
    if let Some(body) = request["requestTemplate"].as_str() {
        req = req.body(render(body, ctx));
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let raw = res.text().await.unwrap();
    assert!(status < 500, "{name}: {status} {raw}");
    if !(200..300).contains(&status) {
        return Err(status);
    }
    let parsed: Value =
        serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {raw}"));

    let response = &action["config"]["response"];
    let defaults = response["translationMapDefaults"].as_object().unwrap();
    let mut values = HashMap::new();
    for (var, path) in response["translationMap"].as_object().unwrap() {
        let path = path.as_str().unwrap();
        let field = path
            .strip_prefix("$.")
            .unwrap_or_else(|| panic!("{name}: JSONPath {path} is not $.field"));
        let value = match parsed.get(field) {
            Some(v) => {
                seen.insert(format!("{name} {path}"));
                v.clone()
            }
            None => {
                let default = defaults
                    .get(var)
                    .unwrap_or_else(|| panic!("{name}: {path} missing from {raw} and no default"));
                serde_json::from_str(default.as_str().unwrap())
                    .unwrap_or_else(|e| panic!("{name}: default of {var} is not JSON: {e}"))
            }
        };
        values.insert(var.clone(), value);
    }
    let template = response["successTemplate"].as_str().unwrap();
    let output_text = regex::Regex::new(r"\$\{([A-Za-z0-9_]+)\}")
        .unwrap()
        .replace_all(template, |c: &regex::Captures| {
            if &c[1] == "rawResult" {
                return raw.clone();
            }
            values
                .get(&c[1])
                .unwrap_or_else(|| panic!("{name}: success template names unknown {}", &c[1]))
                .to_string()
        })
        .into_owned();
    let output: Value = serde_json::from_str(&output_text)
        .unwrap_or_else(|e| panic!("{name}: success template gives bad JSON ({e}): {output_text}"));
    assert_valid(
        &action["contract"]["output"]["successSchema"],
        &output,
        &format!("{name} output contract"),
    );
    Ok(output)
}

#[test]
fn action_files_are_complete_and_name_only_parameters_the_service_reads() {
    let settings = twofactor::config::Settings::from_toml("").unwrap();
    let gia = &settings.gia;
    let read: BTreeSet<String> = gia
        .customer_id_params
        .iter()
        .chain(&gia.call_id_params)
        .chain(&gia.caller_number_params)
        .cloned()
        .chain(["TwoFactorAuthSelectedMethod", "authCode_nbest1", "format"].map(String::from))
        .collect();
    let (basic, oauth) = (load("basic"), load("oauth"));
    let operations = [
        "check-verified-contact-methods",
        "send-authentication-code",
        "code-authentication",
    ];
    assert_eq!(basic.len(), 3, "{:?}", basic.keys());
    assert_eq!(oauth.len(), 4, "{:?}", oauth.keys());
    assert!(oauth.contains_key("custom-auth"));
    for op in operations {
        let (b, o) = (&basic[op], &oauth[op]);
        for field in [
            "/name",
            "/category",
            "/secure",
            "/config/request/requestUrlTemplate",
            "/config/request/requestType",
            "/config/request/headers",
            "/config/request/requestTemplate",
            "/config/response/translationMap",
            "/config/response/translationMapDefaults",
            "/config/response/successTemplate",
            "/contract/input/inputSchema",
            "/contract/output/successSchema",
        ] {
            assert!(o.pointer(field).is_some(), "{op} lacks {field}");
        }
        // The two variants differ only by the bearer header.
        let mut without = o.clone();
        let auth = without["config"]["request"]["headers"]
            .as_object_mut()
            .unwrap()
            .remove("Authorization");
        assert_eq!(
            auth,
            Some(json!("Bearer ${authResponse.access_token}")),
            "{op}"
        );
        assert_eq!(&without, b, "{op}: basic and oauth variants drifted apart");

        let request = &o["config"]["request"];
        let url = request["requestUrlTemplate"].as_str().unwrap();
        let rest = url
            .strip_prefix(&format!("{PLACEHOLDER}/v1/{op}"))
            .unwrap_or_else(|| panic!("{op}: URL {url} is not the endpoint"));
        let query: Vec<String> = rest
            .trim_start_matches('?')
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split('=').next().unwrap().to_string())
            .collect();
        let template = request["requestTemplate"].as_str().unwrap();
        let declared: BTreeSet<String> = o["contract"]["input"]["inputSchema"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let used = input_names(template);
        assert!(
            used.is_subset(&declared),
            "{op}: {used:?} not all in {declared:?}"
        );
        // Render with every declared input to see the parameter names the service gets.
        let ctx = Context {
            input: Value::Object(declared.iter().map(|k| (k.clone(), json!("x"))).collect()),
            auth_response: json!({"access_token": "t"}),
            ..Context::default()
        };
        let body: Value = serde_json::from_str(&render(template, &ctx))
            .unwrap_or_else(|e| panic!("{op}: request template is not JSON: {e}"));
        let names: BTreeSet<String> = body
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .chain(query)
            .collect();
        let unread: Vec<&String> = names.difference(&read).collect();
        assert!(
            unread.is_empty(),
            "{op} sends {unread:?}, which the service does not read"
        );
        assert!(names.contains("CustomerId"), "{op}");
    }
}

async fn the_data_actions_drive_a_whole_call_against_the_service(kind: StoreKind) {
    // Arrange: Basic and bearer callers, a customer with email and SMS, a low lockout.
    let app = spawn_app_with(kind, &oauth_settings("[lockout]\nmax_failures = 2")).await;
    app.add_alice().await;
    let oauth = load("oauth");
    let basic = load("basic");
    let mut seen = Seen::new();
    let credentials = HashMap::from([
        ("clientId", CLIENT.to_string()),
        ("clientSecret", SECRET.to_string()),
        ("loginUrl", format!("{}/oauth/token", app.address)),
    ]);

    // Act + Assert: the custom auth action gets a token, as authResponse for the others.
    let auth_ctx = Context {
        input: json!({}),
        credentials: credentials.clone(),
        ..Context::default()
    };
    let auth_response = execute(&app, &oauth["custom-auth"], &auth_ctx, None, &mut seen)
        .await
        .unwrap();
    assert_eq!(auth_response["token_type"], "Bearer");

    for (variant, actions, creds) in [
        ("oauth", &oauth, None),
        ("basic", &basic, Some(("gia", "gia-pw"))),
    ] {
        let run = |input: Value| Context {
            input: {
                let mut all = json!({"ConversationId": CONVERSATION, "CallerNumber": ""});
                all.as_object_mut()
                    .unwrap()
                    .extend(input.as_object().unwrap().clone());
                all
            },
            credentials: credentials.clone(),
            auth_response: auth_response.clone(),
        };
        let check = &actions["check-verified-contact-methods"];
        let send = &actions["send-authentication-code"];
        let verify = &actions["code-authentication"];

        let methods = execute(
            &app,
            check,
            &run(json!({"CustomerId": "1001"})),
            creds,
            &mut seen,
        )
        .await
        .unwrap();
        assert_eq!(methods["status"], "success", "{variant}");
        assert_eq!(methods["email"], "alice@example.com", "{variant}");
        assert_eq!(methods["sms"], "447911123456", "{variant}");
        assert_eq!(methods["authenticator"], false, "{variant}");
        let nobody = execute(
            &app,
            check,
            &run(json!({"CustomerId": "4040"})),
            creds,
            &mut seen,
        )
        .await
        .unwrap();
        assert_eq!(nobody["status"], "not found", "{variant}");
        assert_eq!(nobody["email"], "", "{variant}");

        let sent = execute(
            &app,
            send,
            &run(json!({"CustomerId": "1001", "TwoFactorAuthSelectedMethod": "SMS"})),
            creds,
            &mut seen,
        )
        .await
        .unwrap();
        assert_eq!(
            sent,
            json!({"status": "success", "message": ""}),
            "{variant}"
        );
        let code = first_code(&app.outbox_messages().last().unwrap()["body"].to_string());
        let attempt = |code: String| {
            run(
                json!({"CustomerId": "1001", "TwoFactorAuthSelectedMethod": "", "authCode_nbest1": code}),
            )
        };
        let wrong = execute(&app, verify, &attempt(wrong_code(&code)), creds, &mut seen)
            .await
            .unwrap();
        assert_eq!(wrong["status"], "incorrect code", "{variant}");
        let right = execute(&app, verify, &attempt(code.clone()), creds, &mut seen)
            .await
            .unwrap();
        assert_eq!(right["status"], "success", "{variant}");
        // A missing parameter is a 4xx: the action's failure path, not a success output.
        let refused = execute(
            &app,
            send,
            &run(json!({"CustomerId": "1001", "TwoFactorAuthSelectedMethod": "Pigeon"})),
            creds,
            &mut seen,
        )
        .await;
        assert_eq!(refused, Err(400), "{variant}");
    }
    // Lock the customer (lockout.max_failures = 2): the lock's message comes through.
    let mut last = Value::Null;
    for _ in 0..3 {
        let ctx = Context {
            input: json!({"CustomerId": "1001", "ConversationId": CONVERSATION, "CallerNumber": "",
                          "TwoFactorAuthSelectedMethod": "SMS", "authCode_nbest1": "000000"}),
            auth_response: auth_response.clone(),
            ..Context::default()
        };
        last = execute(&app, &oauth["code-authentication"], &ctx, None, &mut seen)
            .await
            .unwrap();
    }
    assert!(
        last["message"].as_str().unwrap().contains("locked"),
        "{last}"
    );
    // A send refused by that lock says so too.
    let ctx = Context {
        input: json!({"CustomerId": "1001", "ConversationId": CONVERSATION, "CallerNumber": "",
                      "TwoFactorAuthSelectedMethod": "Email"}),
        auth_response: auth_response.clone(),
        ..Context::default()
    };
    let limited = execute(
        &app,
        &oauth["send-authentication-code"],
        &ctx,
        None,
        &mut seen,
    )
    .await
    .unwrap();
    assert_eq!(limited["status"], "send limited", "{limited}");
    assert!(
        limited["message"].as_str().unwrap().contains("locked"),
        "{limited}"
    );
    // A bearer token Genesys holds after it expired or was revoked: 401, which makes Genesys
    // run the custom auth action again.
    let stale = Context {
        input: json!({"CustomerId": "1001", "ConversationId": CONVERSATION, "CallerNumber": ""}),
        auth_response: json!({"access_token": "expired-or-revoked"}),
        ..Context::default()
    };
    let refused = execute(
        &app,
        &oauth["check-verified-contact-methods"],
        &stale,
        None,
        &mut seen,
    )
    .await;
    assert_eq!(refused, Err(401));

    // Every JSONPath of every translation map named a field of a real answer.
    for (_, action) in oauth.iter().filter(|(k, _)| *k != "custom-auth") {
        let name = action["name"].as_str().unwrap();
        for path in action["config"]["response"]["translationMap"]
            .as_object()
            .unwrap()
            .values()
        {
            let key = format!("{name} {}", path.as_str().unwrap());
            assert!(seen.contains(&key), "no answer had {key}: {seen:?}");
        }
    }
}
both_stores!(
    data_actions,
    the_data_actions_drive_a_whole_call_against_the_service
);
