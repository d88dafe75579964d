{{/*
The pod template shared by the Deployment, the StatefulSet and the backfill Job.
Arguments: dict "root" $ "component" ("consumer"|"backfill") "args" (list) "annotations" (map)
"resources" (map).
*/}}
{{- define "openai-capi-consumer.podTemplate" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
{{- $live := eq .component "consumer" -}}
{{- $port := $values.config.observability.port | int -}}
metadata:
  labels:
    {{- include "openai-capi-consumer.selectorLabels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    {{- with $values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "openai-capi-consumer.configFile" $root | sha256sum }}
    checksum/secret: {{ include "openai-capi-consumer.secretRestartInputs" $root | sha256sum }}
    {{- with .annotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "openai-capi-consumer.serviceAccountName" $root }}
  # The service never talks to the Kubernetes API.
  automountServiceAccountToken: false
  {{- with $values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ include "openai-capi-consumer.terminationGracePeriodSeconds" $root }}
  {{- if not $live }}
  restartPolicy: Never
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ include "openai-capi-consumer.image" $root | quote }}
      imagePullPolicy: {{ $values.image.pullPolicy }}
      args:
        {{- toYaml .args | nindent 8 }}
      ports:
        - name: metrics
          containerPort: {{ $port }}
          protocol: TCP
      env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- if and $live $values.staticMembership.enabled }}
        # Merged into kafka.settings by the service; Kubernetes substitutes $(POD_NAME).
        - name: CAPI_CONSUMER_KAFKA__SETTINGS
          value: {{ dict "group.instance.id" (printf "%s.$(POD_NAME)" $root.Release.Namespace) | toJson | quote }}
        {{- end }}
        {{- with $values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if $live }}
      {{- with $values.probes.startup }}
      {{- if .enabled }}
      startupProbe:
        httpGet:
          path: /livez
          port: metrics
        periodSeconds: {{ .periodSeconds }}
        timeoutSeconds: {{ .timeoutSeconds }}
        failureThreshold: {{ .failureThreshold }}
      {{- end }}
      {{- end }}
      {{- with $values.probes.liveness }}
      {{- if .enabled }}
      livenessProbe:
        httpGet:
          path: /livez
          port: metrics
        periodSeconds: {{ .periodSeconds }}
        timeoutSeconds: {{ .timeoutSeconds }}
        failureThreshold: {{ .failureThreshold }}
      {{- end }}
      {{- end }}
      {{- with $values.probes.readiness }}
      {{- if .enabled }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: metrics
        periodSeconds: {{ .periodSeconds }}
        timeoutSeconds: {{ .timeoutSeconds }}
        failureThreshold: {{ .failureThreshold }}
      {{- end }}
      {{- end }}
      {{- end }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- toYaml $values.securityContext | nindent 8 }}
      # Exit codes 2 (config), 3 (API key rejected) and 4 (DLQ breaker) log one line saying why;
      # it shows in `kubectl describe pod` as the last termination message.
      terminationMessagePolicy: FallbackToLogsOnError
      volumeMounts:
        - name: config
          mountPath: {{ include "openai-capi-consumer.configDir" $root }}
          readOnly: true
        {{- if include "openai-capi-consumer.usesSecret" $root }}
        # A directory mount, not subPath: Kubernetes then swaps rotated keys in place.
        - name: secrets
          mountPath: {{ include "openai-capi-consumer.secretDir" $root }}
          readOnly: true
        {{- end }}
        - name: tmp
          mountPath: /tmp
        {{- with $values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "openai-capi-consumer.fullname" $root }}
    {{- if include "openai-capi-consumer.usesSecret" $root }}
    - name: secrets
      secret:
        secretName: {{ include "openai-capi-consumer.secretName" $root }}
        defaultMode: 0440
    {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- with $values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $live }}
  {{- with $values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
{{- end -}}
