terraform {
  required_version = ">= 1.3"
  required_providers {
    genesyscloud = {
      source = "mypurecloud/genesyscloud"
      # genesyscloud_integration_custom_auth_action and the integration resources as used here.
      version = ">= 1.40.0"
    }
  }
}
