{{/*
The chart name, or nameOverride.
*/}}
{{- define "batchlatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources: fullnameOverride, else the release
name if it contains the chart name, else "<release>-<chart name>". Truncated to
63 characters (the limit of DNS labels, which some names are).
*/}}
{{- define "batchlatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The chart label: name and version.
*/}}
{{- define "batchlatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "batchlatch.labels" -}}
helm.sh/chart: {{ include "batchlatch.chart" . }}
{{ include "batchlatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the release's pods: they never change on upgrades.
*/}}
{{- define "batchlatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "batchlatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "batchlatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "batchlatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Secret holding the callback token, and its key.
*/}}
{{- define "batchlatch.tokenSecretName" -}}
{{- default (include "batchlatch.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "batchlatch.tokenSecretKey" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecretKey }}
{{- else -}}
token
{{- end }}
{{- end }}

{{/*
Where the token Secret is mounted, and the file passed with --token-file.
*/}}
{{- define "batchlatch.tokenDir" -}}
/var/run/secrets/batchlatch
{{- end }}

{{- define "batchlatch.tokenFile" -}}
{{ include "batchlatch.tokenDir" . }}/token
{{- end }}

{{/*
The image reference: repository@digest, else repository:tag (the tag
defaults to the chart's appVersion).
*/}}
{{- define "batchlatch.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Combinations of values the schema cannot express. Included by the Deployment.
*/}}
{{- define "batchlatch.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElect) }}
{{- fail "replicaCount > 1 needs leaderElect: true (otherwise every replica writes the log entries)" }}
{{- end }}
{{- if and (eq .Values.sink "cloudlogging") (not .Values.project) }}
{{- fail "sink: cloudlogging needs project" }}
{{- end }}
{{- if and .Values.token .Values.existingSecret }}
{{- fail "set token or existingSecret, not both" }}
{{- end }}
{{- end }}
