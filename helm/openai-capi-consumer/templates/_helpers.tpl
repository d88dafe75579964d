{{/* Names, labels and the values every template derives from. */}}

{{- define "openai-capi-consumer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "openai-capi-consumer.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "openai-capi-consumer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "openai-capi-consumer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "openai-capi-consumer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "openai-capi-consumer.labels" -}}
helm.sh/chart: {{ include "openai-capi-consumer.chart" . }}
{{ include "openai-capi-consumer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The live consumer's pods; backfill pods carry another component so that the Service, the
PDB and the autoscalers never count them. */}}
{{- define "openai-capi-consumer.consumerSelectorLabels" -}}
{{ include "openai-capi-consumer.selectorLabels" . }}
app.kubernetes.io/component: consumer
{{- end -}}

{{- define "openai-capi-consumer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "openai-capi-consumer.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "openai-capi-consumer.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Static membership needs stable pod names, which only a StatefulSet gives. */}}
{{- define "openai-capi-consumer.workloadKind" -}}
{{- if .Values.staticMembership.enabled -}}StatefulSet{{- else -}}Deployment{{- end -}}
{{- end -}}

{{- define "openai-capi-consumer.configDir" -}}/etc/capi-consumer{{- end -}}
{{- define "openai-capi-consumer.configPath" -}}{{ include "openai-capi-consumer.configDir" . }}/config.yaml{{- end -}}
{{- define "openai-capi-consumer.secretDir" -}}/var/run/secrets/capi-consumer{{- end -}}

{{- define "openai-capi-consumer.secretName" -}}
{{- default (include "openai-capi-consumer.fullname" .) .Values.secret.existingSecret -}}
{{- end -}}

{{/* Which Secret keys the service reads, as YAML: apiKey, kafkaSettings, registrySettings
("" when absent). A created Secret holds a settings file only when its map is not empty. */}}
{{- define "openai-capi-consumer.secretKeys" -}}
{{- $secret := .Values.secret -}}
{{- if $secret.existingSecret -}}
apiKey: {{ $secret.existingSecretKeys.apiKey | quote }}
kafkaSettings: {{ $secret.existingSecretKeys.kafkaSettings | quote }}
registrySettings: {{ $secret.existingSecretKeys.registrySettings | quote }}
{{- else -}}
apiKey: api-key
kafkaSettings: {{ ternary "kafka-settings.yaml" "" (not (empty $secret.kafkaSettings)) | quote }}
registrySettings: {{ ternary "registry-settings.yaml" "" (not (empty $secret.registrySettings)) | quote }}
{{- end -}}
{{- end -}}

{{- define "openai-capi-consumer.usesSecret" -}}
{{- if or .Values.secret.existingSecret .Values.secret.create -}}true{{- end -}}
{{- end -}}

{{/* The config file: the `config` values plus the paths and switches the chart owns. */}}
{{- define "openai-capi-consumer.configFile" -}}
{{- $config := deepCopy .Values.config -}}
{{- if include "openai-capi-consumer.usesSecret" . -}}
{{- $keys := include "openai-capi-consumer.secretKeys" . | fromYaml -}}
{{- $dir := include "openai-capi-consumer.secretDir" . -}}
{{- $_ := set $config.capi "api_key_file" (printf "%s/%s" $dir $keys.apiKey) -}}
{{- if $keys.kafkaSettings -}}
{{- $_ := set $config.kafka "secret_settings_file" (printf "%s/%s" $dir $keys.kafkaSettings) -}}
{{- end -}}
{{- if $keys.registrySettings -}}
{{- $_ := set $config.schema "registry_settings_file" (printf "%s/%s" $dir $keys.registrySettings) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $config.observability "enabled" true -}}
{{- toYaml $config -}}
{{- end -}}

{{/* Secret content read only at start (Kafka and registry credentials): a change must roll
the pods. The API key is left out on purpose: the service re-reads its file, so rotating it
restarts nothing. */}}
{{- define "openai-capi-consumer.secretRestartInputs" -}}
{{- if .Values.secret.existingSecret -}}
{{- toYaml (dict "existingSecret" .Values.secret.existingSecret "keys" .Values.secret.existingSecretKeys) -}}
{{- else if .Values.secret.create -}}
{{- toYaml (dict "kafka" .Values.secret.kafkaSettings "registry" .Values.secret.registrySettings) -}}
{{- end -}}
{{- end -}}

{{/* SIGTERM → flush for up to shutdown_grace_s (a request may have just started and run for
timeout_s) → commit → close; 10 s more for the commit and the group leave. */}}
{{- define "openai-capi-consumer.terminationGracePeriodSeconds" -}}
{{- $delivery := .Values.config.delivery -}}
{{- $needed := add (ceil $delivery.shutdown_grace_s | int) (ceil $delivery.timeout_s | int) 10 -}}
{{- $explicit := .Values.terminationGracePeriodSeconds -}}
{{- if kindIs "invalid" $explicit -}}
{{- $needed -}}
{{- else if le (int $explicit) (ceil $delivery.shutdown_grace_s | int) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed config.delivery.shutdown_grace_s (%v), or pods are killed before they commit" (int $explicit) $delivery.shutdown_grace_s) -}}
{{- else -}}
{{- int $explicit -}}
{{- end -}}
{{- end -}}

{{/* A number or string argument as the CLI expects it: epoch milliseconds and offsets arrive
as float64 from YAML and would otherwise print as 1.7e+12. */}}
{{- define "openai-capi-consumer.cliValue" -}}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) -}}
{{- printf "%d" (int64 .) -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* `capi-consumer backfill` arguments from `backfill` values. */}}
{{- define "openai-capi-consumer.backfillArgs" -}}
{{- $b := .Values.backfill -}}
{{- $args := list "backfill" "--config" (include "openai-capi-consumer.configPath" .) -}}
{{- range $flag, $key := dict "--from-offset" "fromOffset" "--to-offset" "toOffset" "--from-time" "fromTime" "--to-time" "toTime" "--run-id" "runId" -}}
{{- $value := index $b $key -}}
{{- if not (or (kindIs "invalid" $value) (eq (toString $value) "")) -}}
{{- $args = concat $args (list $flag (include "openai-capi-consumer.cliValue" $value)) -}}
{{- end -}}
{{- end -}}
{{- if $b.topics -}}
{{- $args = concat $args (list "--topics" (join "," $b.topics)) -}}
{{- end -}}
{{- if $b.partitions -}}
{{- $partitions := list -}}
{{- range $b.partitions -}}
{{- $partitions = append $partitions (include "openai-capi-consumer.cliValue" .) -}}
{{- end -}}
{{- $args = concat $args (list "--partitions" (join "," $partitions)) -}}
{{- end -}}
{{- if $b.fromBeginning -}}{{- $args = append $args "--from-beginning" -}}{{- end -}}
{{- if $b.dryRun -}}{{- $args = append $args "--dry-run" -}}{{- end -}}
{{- if $b.dlqExpired -}}{{- $args = append $args "--dlq-expired" -}}{{- end -}}
{{- if not (kindIs "invalid" $b.maxEventsPerSecond) -}}
{{- $args = concat $args (list "--max-events-per-second" (toString $b.maxEventsPerSecond)) -}}
{{- end -}}
{{- toJson $args -}}
{{- end -}}
