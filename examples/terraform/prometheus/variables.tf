variable "project" {
  description = "ID of the Google Cloud project whose Managed Prometheus holds batchlatch's metrics."
  type        = string
}

variable "batchlatch_namespace" {
  description = "Namespace batchlatch runs in: the target label namespace of its series."
  type        = string
  default     = "batchlatch"
}

variable "extra_matchers" {
  description = <<-EOT
    More PromQL label matchers for batchlatch's series, e.g. ["cluster=\"prod\""] or
    ["job=\"batchlatch\""] (the PodMonitoring's name) when two releases share a namespace.
  EOT
  type        = list(string)
  default     = []
}

variable "bridge" {
  description = <<-EOT
    How long an incident keeps its state while batchlatch is not scraped at all (down,
    a scrape gap). Past it, the job's incident closes, and opens again when batchlatch is back
    if the job still fails.
  EOT
  type        = string
  default     = "1h"

  validation {
    condition     = can(regex("^[1-9][0-9]*[mh]$", var.bridge))
    error_message = "bridge: a PromQL duration in minutes or hours, e.g. \"1h\"."
  }
}

variable "notification_channels" {
  description = "IDs of the notification channels (projects/<project>/notificationChannels/<id>) told when an incident opens and closes."
  type        = list(string)
  default     = []
}
