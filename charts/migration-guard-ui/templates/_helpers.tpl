{{- define "migration-guard-ui.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "migration-guard-ui.fullname" -}}
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

{{- define "migration-guard-ui.selectorLabels" -}}
app.kubernetes.io/name: {{ include "migration-guard-ui.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "migration-guard-ui.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "migration-guard-ui.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The extension's version (semver, as Rancher compares them). */}}
{{- define "migration-guard-ui.version" -}}
{{- (semver (default .Chart.AppVersion .Values.plugin.version)).Original }}
{{- end }}

{{/* <name>-<version>: the bundle's folder, file prefix and window global. */}}
{{- define "migration-guard-ui.id" -}}
{{- printf "%s-%s" .Values.plugin.name (include "migration-guard-ui.version" .) }}
{{- end }}

{{- define "migration-guard-ui.endpoint" -}}
{{- if .Values.plugin.endpoint }}
{{- .Values.plugin.endpoint | trimSuffix "/" }}
{{- else if .Values.server.enabled }}
{{- printf "http://%s.%s.svc:%d/plugin/%s" (include "migration-guard-ui.fullname" .) .Release.Namespace (int .Values.server.port) (include "migration-guard-ui.id" .) }}
{{- else }}
{{- fail "plugin.endpoint is empty and server.enabled=false: set plugin.endpoint to where the extension's files are served, or enable the chart's server" }}
{{- end }}
{{- end }}

{{/* The bundle's files in this chart: files/plugin/<id>/... (make ui-chart copies them there). */}}
{{- define "migration-guard-ui.bundlePath" -}}
{{- printf "files/plugin/%s/plugin/%s.umd.min.js" (include "migration-guard-ui.id" .) (include "migration-guard-ui.id" .) }}
{{- end }}
