variable "project" {
  description = "ID of the Google Cloud project batchlatch writes its entries to (its --project)."
  type        = string
}

variable "log_name" {
  description = <<-EOT
    batchlatch's --log-name: the log its Cloud Logging sink writes to. With --sink=stdout the
    entries are in the pod's own log instead: set "stdout" (the filter's jsonPayload.failing=1
    keeps other containers' lines out, as long as none of them logs that field).
  EOT
  type        = string
  default     = "batchlatch"

  validation {
    # The log IDs batchlatch itself accepts (alarm/cloudlogging.go).
    condition     = can(regex("^[A-Za-z0-9/_.-]{1,511}$", var.log_name))
    error_message = "log_name: 1 to 511 of A-Z a-z 0-9 / _ - ."
  }
}

variable "metric_name" {
  description = "Name of the log-based metric; its type is logging.googleapis.com/user/<metric_name>."
  type        = string
  default     = "batchlatch/failing"
}

variable "group_by" {
  description = <<-EOT
    "job": one incident per failing job (namespace + CronWorkflow), the default.
    "namespace": one incident per namespace with at least one failing job.
  EOT
  type        = string
  default     = "job"

  validation {
    condition     = contains(["job", "namespace"], var.group_by)
    error_message = "group_by: \"job\" or \"namespace\"."
  }
}

variable "extra_group_by_fields" {
  description = <<-EOT
    More fields to tell series apart, e.g. ["resource.label.cluster_name"] when batchlatch runs in
    several clusters that write to one project and the same namespace/job may exist in each.
    Never a pod label: each batchlatch replica that writes (a new leader, a rollout) makes its own
    series, and they must add up to one.
  EOT
  type        = list(string)
  default     = []
}

variable "alignment_period" {
  description = <<-EOT
    Rolling window the condition counts ERROR entries over. It must outlast the log-based metric's
    ingestion lag (up to 10 minutes) plus two write intervals (60 s each by default), or a late
    metric looks like a recovery: the incident closes and a second one opens for the same streak.
    Shorter closes sooner after a success; see README.md.
  EOT
  type        = string
  default     = "720s"

  validation {
    condition = can(regex("^[0-9]+s$", var.alignment_period)) && try(
      tonumber(trimsuffix(var.alignment_period, "s")) >= 120 && tonumber(trimsuffix(var.alignment_period, "s")) % 60 == 0,
      false,
    )
    error_message = "alignment_period: whole minutes in seconds (\"720s\"), at least \"120s\" (two write intervals)."
  }
}

variable "notification_channels" {
  description = "IDs of the notification channels (projects/<project>/notificationChannels/<id>) told when an incident opens and closes."
  type        = list(string)
  default     = []
}

variable "batchlatch_namespace" {
  description = "Namespace of the batchlatch Service; used only in the incident's documentation."
  type        = string
  default     = "batchlatch"
}
