output "alert_policy" {
  description = "Resource name of the per-job alert policy."
  value       = google_monitoring_alert_policy.failing.name
}

output "absent_alert_policy" {
  description = "Resource name of the policy that alerts when batchlatch is not running."
  value       = google_monitoring_alert_policy.absent.name
}
