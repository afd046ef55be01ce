{{/* Names, labels and the parts every kaipiao container shares. */}}

{{- define "kaipiao.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kaipiao.fullname" -}}
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

{{- define "kaipiao.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kaipiao.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kaipiao.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "kaipiao.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kaipiao.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kaipiao.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kaipiao.secretName" -}}
{{- default (printf "%s-secrets" (include "kaipiao.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "kaipiao.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The pod-level settings of every kaipiao pod. */}}
{{- define "kaipiao.podSpec" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: secrets
    secret:
      secretName: {{ include "kaipiao.secretName" . }}
      defaultMode: 0400
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
  {{- if .Values.files.existingClaim }}
  - name: files
    persistentVolumeClaim:
      claimName: {{ .Values.files.existingClaim | quote }}
  {{- end }}
{{- end }}

{{/* The container settings of every kaipiao container: image, security, mounts. The image's
     entrypoint is `tini -- kaipiao`; each role gives its command as args. */}}
{{- define "kaipiao.containerBase" -}}
image: {{ include "kaipiao.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: secrets
    mountPath: {{ .Values.secrets.mountPath }}
    readOnly: true
  - name: tmp
    mountPath: /tmp
  {{- if .Values.files.existingClaim }}
  - name: files
    mountPath: {{ .Values.files.mountPath }}
  {{- end }}
{{- end }}

{{/* The environment every kaipiao container shares (a list's items; roles append theirs). */}}
{{- define "kaipiao.env" -}}
- name: KAIPIAO_DATABASE_URL_FILE
  value: {{ printf "%s/database-url" .Values.secrets.mountPath | quote }}
- name: KAIPIAO_LEDGER_KEY_FILE
  value: {{ printf "%s/ledger-key.pem" .Values.secrets.mountPath | quote }}
- name: KAIPIAO_SECRETS_KEY_FILE
  value: {{ printf "%s/secrets.key" .Values.secrets.mountPath | quote }}
- name: KAIPIAO_PLATFORM_URL
  value: {{ .Values.platform.url | quote }}
- name: KAIPIAO_PLATFORM_TIMEOUT_S
  value: {{ .Values.platform.timeoutSeconds | quote }}
# Nothing is shared through a filesystem: the data directory is the pod's own /tmp, the
# checkpoints stay in the database, no demo seller, and the migration Job migrates.
- name: KAIPIAO_DATA_DIR
  value: /tmp/kaipiao
- name: KAIPIAO_LEDGER_PUBLISH
  value: "false"
- name: KAIPIAO_DEMO_SELLER
  value: "false"
- name: KAIPIAO_MIGRATE_ON_START
  value: "false"
- name: KAIPIAO_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
# Invoice files (PDF/XML) are fetched and mailed only where every pod shares the file store.
{{- if .Values.files.existingClaim }}
- name: KAIPIAO_FILES_DIR
  value: {{ .Values.files.mountPath | quote }}
{{- else }}
- name: KAIPIAO_FILES_FETCH
  value: "false"
{{- end }}
{{- with .Values.rateLimit.redisUrl }}
- name: KAIPIAO_RATE_LIMIT_URL
  value: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.config }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Anti-affinity across nodes for one component: hard (required) or soft (preferred). */}}
{{- define "kaipiao.antiAffinity" -}}
{{- $root := index . 0 }}{{- $component := index . 1 }}{{- $mode := index . 2 }}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (dict "app.kubernetes.io/name" (include "kaipiao.name" $root) "app.kubernetes.io/instance" $root.Release.Name "app.kubernetes.io/component" $component)) }}
podAntiAffinity:
{{- if eq $mode "hard" }}
  requiredDuringSchedulingIgnoredDuringExecution:
    - {{- toYaml $term | nindent 6 }}
{{- else }}
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        {{- toYaml $term | nindent 8 }}
{{- end }}
{{- end }}
