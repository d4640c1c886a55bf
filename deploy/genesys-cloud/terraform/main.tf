# The three twofactor data actions (and, for OAuth, the custom auth action) on a Web Services Data
# Actions integration. The actions are read from ../actions/, the same JSON files an admin can
# import by hand, so the two ways never drift apart; only the placeholder base URL is replaced.

locals {
  placeholder = "https://twofactor.example.com"
  base_url    = trimsuffix(var.twofactor_base_url, "/")
  oauth       = var.credential_type == "oauth"
  action_files = {
    check_verified_contact_methods = "check-verified-contact-methods"
    send_authentication_code       = "send-authentication-code"
    code_authentication            = "code-authentication"
  }
  actions = {
    for key, file in local.action_files :
    key => jsondecode(file("${path.module}/../actions/${var.credential_type}/${file}.json"))
  }
  custom_auth = jsondecode(file("${path.module}/../actions/oauth/custom-auth.json"))
}

resource "genesyscloud_integration_credential" "twofactor" {
  name                 = "${var.integration_name} credentials"
  credential_type_name = local.oauth ? "userDefinedOAuth" : "basicAuth"
  # User Defined (OAuth) takes any fields; the custom auth action reads them as ${credentials.*}.
  fields = local.oauth ? tomap({
    clientId     = var.oauth_client_id
    clientSecret = var.oauth_client_secret
    loginUrl     = "${local.base_url}/oauth/token"
    }) : tomap({
    userName = var.basic_user_id
    password = var.basic_password
  })
}

resource "genesyscloud_integration" "twofactor" {
  intended_state   = "ENABLED"
  integration_type = "custom-rest-actions"
  config {
    name = var.integration_name
    credentials = {
      # The key is basicAuth for every credential type of this integration type.
      basicAuth = genesyscloud_integration_credential.twofactor.id
    }
  }
}

# Genesys Cloud creates the custom auth action itself for User Defined (OAuth) credentials; this
# resource only configures it (its contracts cannot be changed).
resource "genesyscloud_integration_custom_auth_action" "twofactor" {
  count          = local.oauth ? 1 : 0
  integration_id = genesyscloud_integration.twofactor.id
  name           = "${var.integration_name} Custom Auth"
  config_request {
    request_url_template = local.custom_auth.config.request.requestUrlTemplate
    request_type         = local.custom_auth.config.request.requestType
    request_template     = local.custom_auth.config.request.requestTemplate
    headers              = local.custom_auth.config.request.headers
  }
  config_response {
    translation_map          = local.custom_auth.config.response.translationMap
    translation_map_defaults = local.custom_auth.config.response.translationMapDefaults
    success_template         = local.custom_auth.config.response.successTemplate
  }
}

resource "genesyscloud_integration_action" "twofactor" {
  for_each               = local.actions
  name                   = each.value.name
  category               = var.category
  integration_id         = genesyscloud_integration.twofactor.id
  secure                 = each.value.secure
  config_timeout_seconds = var.timeout_seconds
  contract_input         = jsonencode(each.value.contract.input.inputSchema)
  contract_output        = jsonencode(each.value.contract.output.successSchema)
  config_request {
    request_url_template = replace(each.value.config.request.requestUrlTemplate, local.placeholder, local.base_url)
    request_type         = each.value.config.request.requestType
    request_template     = each.value.config.request.requestTemplate
    headers              = each.value.config.request.headers
  }
  config_response {
    translation_map          = each.value.config.response.translationMap
    translation_map_defaults = each.value.config.response.translationMapDefaults
    success_template         = each.value.config.response.successTemplate
  }
  depends_on = [genesyscloud_integration_custom_auth_action.twofactor]
}
