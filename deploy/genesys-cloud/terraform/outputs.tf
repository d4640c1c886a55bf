output "integration_id" {
  description = "The Web Services Data Actions integration."
  value       = genesyscloud_integration.twofactor.id
}

output "action_ids" {
  description = "Data action ids by operation: check_verified_contact_methods, send_authentication_code, code_authentication."
  value       = { for key, action in genesyscloud_integration_action.twofactor : key => action.id }
}
