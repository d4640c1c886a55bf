variable "twofactor_base_url" {
  description = "Where Genesys Cloud reaches twofactor, e.g. https://twofactor.bank.example (HTTPS, no trailing path)."
  type        = string
  validation {
    condition     = can(regex("^https://[^/]+(/.*)?$", var.twofactor_base_url))
    error_message = "twofactor_base_url must be an https:// URL: credentials and tokens travel in it."
  }
}

variable "credential_type" {
  description = "\"oauth\": User Defined (OAuth) credentials and a custom auth action that fetches tokens from twofactor's /oauth/token (security.auth_scheme lists \"bearer\"). \"basic\": Basic Auth credentials (security.auth_scheme lists \"basic\")."
  type        = string
  default     = "oauth"
  validation {
    condition     = contains(["oauth", "basic"], var.credential_type)
    error_message = "credential_type must be \"oauth\" or \"basic\"."
  }
}

variable "integration_name" {
  description = "Name of the Web Services Data Actions integration."
  type        = string
  default     = "twofactor"
}

variable "category" {
  description = "Category the data actions are listed under in Architect."
  type        = string
  default     = "twofactor"
}

variable "oauth_client_id" {
  description = "With credential_type = \"oauth\": an id from twofactor's security.oauth_clients."
  type        = string
  default     = ""
}

variable "oauth_client_secret" {
  description = "With credential_type = \"oauth\": that client's secret (twofactor keeps only its SHA-256)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "basic_user_id" {
  description = "With credential_type = \"basic\": twofactor's security.user_id."
  type        = string
  default     = ""
}

variable "basic_password" {
  description = "With credential_type = \"basic\": twofactor's security.password."
  type        = string
  default     = ""
  sensitive   = true
}

variable "timeout_seconds" {
  description = "Time each data action may take (1 to 60). Sending by SMS or email waits for the gateway."
  type        = number
  default     = 15
}
