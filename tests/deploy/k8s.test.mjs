// The Kubernetes manifests without a cluster: every overlay rendered by `kubectl kustomize`, every
// object validated against the Kubernetes OpenAPI schemas (kubernetes-models), and the manifests held
// to the application's own configuration: ports, health service names, settings, paths, drain time.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OVERLAYS = ['cpu', 'gpu', 'cpu-tls'];
const read = (relative) => fs.readFileSync(path.join(ROOT, relative), 'utf8');
const appsettings = JSON.parse(read('src/MaskFormer.Server/appsettings.json'));
const grpcPort = Number(new URL(appsettings.Kestrel.Endpoints.Grpc.Url).port);
const endpoints = read('src/MaskFormer.Server/Hosting/SegmentationEndpointExtensions.cs');
const constant = (source, name) => new RegExp(`${name}\\s*=\\s*"([^"]*)"`).exec(source)?.[1];
const readinessService = constant(endpoints, 'ReadinessService');
const livenessService = constant(endpoints, 'LivenessService');
const streamingOptions = read('src/MaskFormer.Server/Streaming/StreamingOptions.cs');
const shutdownMarginSeconds = Number(/ShutdownMargin \{ get; \} = TimeSpan\.FromSeconds\((\d+)\)/.exec(streamingOptions)[1]);
const dockerUser = Number(/^USER (\d+)$/m.exec(read('Dockerfile'))[1]);

function render(target) {
  const output = execFileSync('kubectl', ['kustomize', path.join(ROOT, 'k8s', target)], { encoding: 'utf8' });
  return parseAllDocuments(output).map((doc) => doc.toJSON());
}

// Options classes bound from configuration: section name -> property names, from the sources.
function optionSections() {
  const sections = new Map();
  const walk = (dir) => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
  for (const file of walk(path.join(ROOT, 'src')).filter((f) => f.endsWith('.cs'))) {
    const source = fs.readFileSync(file, 'utf8');
    const section = /const string SectionName = "([^"]+)"/.exec(source)?.[1];
    if (!section) continue;
    const properties = new Set(Array.from(source.matchAll(/public [\w<>?, ]+ (\w+) \{ get; set; \}/g), (m) => m[1]));
    sections.set(section, properties);
  }
  return sections;
}

async function validateObject(object) {
  const [group, version] = object.apiVersion.includes('/') ? object.apiVersion.split('/') : [null, object.apiVersion];
  const models = await import(group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`);
  const Model = models[object.kind];
  assert.ok(Model, `no schema for ${object.apiVersion} ${object.kind}`);
  new Model(object).validate();
}

const rendered = Object.fromEntries(OVERLAYS.map((o) => [o, render(`overlays/${o}`)]));
const byKind = (objects, kind) => objects.filter((o) => o.kind === kind);
const one = (objects, kind) => {
  const found = byKind(objects, kind);
  assert.equal(found.length, 1, `one ${kind}`);
  return found[0];
};

test('the schema validator rejects a broken object (so the validation below can fail)', async () => {
  await assert.rejects(validateObject({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: { replicas: 'two', selector: {}, template: {} } }));
  await assert.rejects(validateObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' }, spec: { containers: [{ name: 'a', livenessProbe: { grpc: { service: 'x' } } }] } }));
});

for (const overlay of OVERLAYS) {
  test(`overlay ${overlay}: renders, and every object is valid against the Kubernetes schemas`, async () => {
    const objects = rendered[overlay];
    const kinds = objects.map((o) => o.kind).sort();
    assert.deepEqual(kinds, ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'NetworkPolicy', 'PodDisruptionBudget', 'Service', 'Service', 'ServiceAccount']);
    for (const object of objects) await validateObject(object);
  });

  test(`overlay ${overlay}: ports, probes, settings and paths match the application`, () => {
    const objects = rendered[overlay];
    const deployment = one(objects, 'Deployment');
    const pod = deployment.spec.template.spec;
    const [container] = pod.containers;
    const configMap = one(objects, 'ConfigMap');
    const settings = configMap.data;

    // Ports: the app's gRPC endpoint, every probe, both Services, the NetworkPolicy.
    const ports = Object.fromEntries(container.ports.map((p) => [p.name, p.containerPort]));
    assert.equal(ports.grpc, grpcPort);
    const grpcUrl = new URL(settings.Kestrel__Endpoints__Grpc__Url);
    assert.equal(Number(grpcUrl.port), grpcPort);
    // Endpoints: appsettings.json's, with their URLs as the settings override them, and those only the settings add.
    const kestrelUrls = Object.fromEntries(Object.entries(appsettings.Kestrel.Endpoints).map(([name, endpoint]) => [name, endpoint.Url]));
    for (const [name, value] of Object.entries(settings)) {
      const match = /^Kestrel__Endpoints__(\w+)__Url$/.exec(name);
      if (match) kestrelUrls[match[1]] = value;
    }
    for (const [name, url] of Object.entries(kestrelUrls)) {
      assert.ok(Object.values(ports).includes(Number(new URL(url).port)), `Kestrel endpoint ${name} has a container port`);
    }
    assert.equal(ports.metrics, Number(new URL(settings.MaskFormer__Telemetry__PrometheusUrl).port), 'the metrics port is where the Prometheus listener is');
    // With TLS the kubelet's probes (which cannot speak TLS) use a cleartext endpoint that serves health only.
    const tls = grpcUrl.protocol === 'https:';
    const probePort = tls ? ports.health : grpcPort;
    if (tls) {
      const probeEndpoint = Object.values(kestrelUrls).map((u) => new URL(u)).find((u) => Number(u.port) === probePort);
      assert.equal(probeEndpoint?.protocol, 'http:', 'the probe port is a cleartext Kestrel endpoint');
    }
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) assert.equal(container[probe].grpc.port, probePort, probe);
    const services = byKind(objects, 'Service');
    assert.deepEqual(services.map((s) => s.spec.clusterIP === 'None').sort(), [false, true], 'a regular and a headless Service');
    for (const service of services) {
      assert.deepEqual(service.spec.selector, Object.fromEntries(Object.entries(service.spec.selector).filter(([k, v]) => deployment.spec.template.metadata.labels[k] === v)));
      const grpc = service.spec.ports.find((p) => p.name === 'grpc');
      assert.equal(grpc.port, grpcPort);
      assert.equal(grpc.appProtocol, tls ? 'https' : 'kubernetes.io/h2c');
      for (const port of service.spec.ports) assert.ok(port.targetPort in ports, `Service ${service.metadata.name} targets a named container port`);
      if (tls) assert.ok(!service.spec.ports.some((p) => p.targetPort === 'health'), 'the probe-only port is not in a Service');
    }
    const policy = one(objects, 'NetworkPolicy');
    assert.deepEqual(policy.spec.ingress.flatMap((rule) => rule.ports.map((p) => p.port)).sort(), Object.keys(ports).filter((p) => !(tls && p === 'health')).sort(),
      'the NetworkPolicy opens every port but the probe-only one');

    // Probes: the health service names the server maps; readiness and liveness differ.
    assert.equal(readinessService, 'maskformer.v1.SegmentationService');
    assert.equal(container.startupProbe.grpc.service, readinessService);
    assert.equal(container.readinessProbe.grpc.service, readinessService);
    assert.equal(container.livenessProbe.grpc.service, livenessService);
    assert.notEqual(livenessService, readinessService);

    // Settings: every MaskFormer__/Kestrel__ variable names an option the server binds.
    const sections = optionSections();
    const env = { ...settings, ...Object.fromEntries(container.env.map((e) => [e.name, e.value ?? e.valueFrom])) };
    for (const name of Object.keys(env).filter((n) => n.startsWith('MaskFormer__'))) {
      const parts = name.split('__');
      const section = `${parts[0]}:${parts[1]}`;
      assert.ok(sections.has(section), `${name}: no options section ${section}`);
      assert.ok(sections.get(section).has(parts[2]), `${name}: ${section} has no setting ${parts[2]}`);
      if (parts.length > 3) {
        assert.match(parts[3], /^\d+$/, name);
        // A list item's settings (Devices__0__Name): DeviceOptions lives beside InferenceOptions.
        assert.ok(sections.get(section).has(parts[4]), `${name}: no list-item setting ${parts[4]}`);
      }
    }
    for (const name of Object.keys(env).filter((n) => n.startsWith('Kestrel__'))) {
      const [, , endpoint, key] = name.split('__');
      const known = endpoint in appsettings.Kestrel.Endpoints;
      assert.ok(known ? key in appsettings.Kestrel.Endpoints[endpoint] : key === 'Url', `${name} is neither in appsettings.json nor a new endpoint's Url`);
    }
    assert.equal(container.envFrom[0].configMapRef.name, configMap.metadata.name);

    // Paths: the image's model folder; the writable temp folder is the emptyDir.
    const dockerModels = /MaskFormer__Models__Path=(\S+)/.exec(read('Dockerfile'))[1];
    assert.equal(settings.MaskFormer__Models__Path, dockerModels);
    const tmp = container.volumeMounts.find((m) => m.mountPath === settings.TMPDIR);
    assert.ok(tmp && pod.volumes.find((v) => v.name === tmp.name).emptyDir, 'TMPDIR is an emptyDir');

    // Threads follow the CPU limit; whole cores, requests = limits.
    for (const name of ['DOTNET_PROCESSOR_COUNT', 'MaskFormer__Inference__IntraOpThreads']) {
      const ref = container.env.find((e) => e.name === name)?.valueFrom?.resourceFieldRef;
      assert.deepEqual(ref && { c: ref.containerName, r: ref.resource }, { c: container.name, r: 'limits.cpu' }, name);
    }
    assert.match(String(container.resources.limits.cpu), /^\d+$/);
    assert.equal(String(container.resources.requests.cpu), String(container.resources.limits.cpu));

    // Drain: the grace period covers preStop + drain time + the host's margin.
    const drainSeconds = settings.MaskFormer__Streaming__DrainTimeout.split(':').reduce((total, part) => total * 60 + Number(part), 0);
    const preStop = container.lifecycle?.preStop?.sleep?.seconds ?? 0;
    assert.ok(pod.terminationGracePeriodSeconds > preStop + drainSeconds + shutdownMarginSeconds,
      `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} <= ${preStop} + ${drainSeconds} + ${shutdownMarginSeconds}`);

    // Restricted Pod Security: non-root as the image's user, read-only root, nothing added.
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, dockerUser);
    assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(container.securityContext.capabilities.drop, ['ALL']);
    assert.equal(pod.automountServiceAccountToken, false);
    const account = one(objects, 'ServiceAccount');
    assert.equal(account.automountServiceAccountToken, false);
    assert.equal(pod.serviceAccountName, account.metadata.name);

    // Image pinned; PDB and HPA aimed at this Deployment.
    assert.match(container.image, new RegExp(`:\\d+\\.\\d+\\.\\d+-${overlay.split('-')[0]}$`));
    const pdb = one(objects, 'PodDisruptionBudget');
    assert.deepEqual(pdb.spec.selector.matchLabels, deployment.spec.selector.matchLabels);
    const hpa = one(objects, 'HorizontalPodAutoscaler');
    assert.equal(hpa.spec.scaleTargetRef.name, deployment.metadata.name);
    assert.equal(hpa.spec.metrics[0].resource.name, 'cpu');
    assert.ok(hpa.spec.minReplicas >= 2, 'two pods at least, so the PDB lets one drain');

    // TLS: certificate, key and tokens from secrets mounted read-only, where the settings point; the
    // files readable by the image's user through fsGroup and by nobody else.
    if (tls) {
      const secretMount = (file) => {
        const mount = container.volumeMounts.find((m) => file.startsWith(`${m.mountPath}/`));
        assert.ok(mount, `${file} is on no volume`);
        assert.equal(mount.readOnly, true, `${mount.mountPath} is mounted read-only`);
        const volume = pod.volumes.find((v) => v.name === mount.name);
        assert.ok(volume.secret?.secretName, `${file} comes from a secret`);
        assert.equal(volume.secret.defaultMode, 0o440, `${volume.name}: mode 0440`);
        return { volume, key: file.slice(mount.mountPath.length + 1) };
      };
      const certificate = secretMount(settings.MaskFormer__Security__CertificatePath);
      const key = secretMount(settings.MaskFormer__Security__KeyPath);
      assert.equal(certificate.volume, key.volume, 'certificate and key from one secret');
      assert.deepEqual([certificate.key, key.key], ['tls.crt', 'tls.key'], 'the keys of a kubernetes.io/tls secret');
      const tokens = secretMount(settings.MaskFormer__Security__TokensFile);
      assert.notEqual(tokens.volume, certificate.volume);
      assert.equal(pod.securityContext.fsGroup, dockerUser);
      assert.equal(settings.MaskFormer__Security__Reflection, 'Off');
    } else {
      assert.equal(settings.MaskFormer__Security__CertificatePath, undefined);
    }

    // Devices: the GPU overlay asks for a GPU and requires it; the CPU overlay has none.
    const gpus = container.resources.limits['nvidia.com/gpu'];
    if (overlay === 'gpu') {
      assert.equal(String(gpus), '1');
      assert.equal(settings.MaskFormer__Inference__Devices__0__Name, 'cuda:0');
      assert.equal(settings.MaskFormer__Inference__Devices__0__Required, 'true');
      assert.ok(Object.keys(pod.nodeSelector).length > 0);
      assert.ok(pod.tolerations.some((t) => t.key === 'nvidia.com/gpu'));
    } else {
      assert.equal(gpus, undefined);
      assert.equal(settings.MaskFormer__Inference__Devices__0__Name, 'cpu');
    }
  });
}
