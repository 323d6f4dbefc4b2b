variable "project" {
  description = "ID of the Google Cloud project batchlatch writes its entries to (its --project)."
  type        = string
}

variable "log_name" {
  description = <<-EOT
    batchlatch's --log-name: the log its Cloud Logging sink writes to. With --sink=stdout the
    entries are in the pod's own log instead: set "stdout" (the filters' jsonPayload.failing and
    jsonPayload.heartbeat keep other containers' lines out, as long as none of them logs those fields).
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
    Window of the median of the failing values. batchlatch writes, at each change (a streak's
    first failure, a recovery, a restart), enough entries to outweigh a whole window of the old
    value: set its --policy-window (BATCHLATCH_POLICY_WINDOW, chart value alarm.policyWindow) to
    the same duration. Longer bridges flapping jobs better and costs more entries per change;
    shorter than the metric's ingestion lag (15 minutes) plus 2 leaves late windows empty.
  EOT
  type        = string
  default     = "1080s"

  validation {
    condition = can(regex("^[0-9]+s$", var.alignment_period)) && try(
      tonumber(trimsuffix(var.alignment_period, "s")) >= 120 && tonumber(trimsuffix(var.alignment_period, "s")) <= 3600 && tonumber(trimsuffix(var.alignment_period, "s")) % 60 == 0,
      false,
    )
    error_message = "alignment_period: whole minutes in seconds (\"1080s\"), from \"120s\" to \"3600s\" (batchlatch weighs at most 60 passes)."
  }
}

variable "heartbeat_metric_name" {
  description = "Name of the log-based metric of batchlatch's heartbeats."
  type        = string
  default     = "batchlatch/heartbeat"
}

variable "not_writing_after" {
  description = <<-EOT
    How long without a heartbeat before "batchlatch: not writing" opens. At least the metric's
    ingestion lag (15 minutes) plus one write interval, or a late metric looks like an outage.
  EOT
  type        = string
  default     = "1200s"

  validation {
    condition = can(regex("^[0-9]+s$", var.not_writing_after)) && try(
      tonumber(trimsuffix(var.not_writing_after, "s")) >= 960 && tonumber(trimsuffix(var.not_writing_after, "s")) % 60 == 0,
      false,
    )
    error_message = "not_writing_after: whole minutes in seconds, at least \"960s\" (ingestion lag + one interval)."
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
