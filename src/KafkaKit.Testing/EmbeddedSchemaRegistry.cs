using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KafkaKit.Testing;

/// <summary>
/// An in-process Schema Registry for tests and local runs: an HTTP server on a loopback port that speaks the subset
/// of the Confluent Schema Registry REST API that registry clients use (Confluent's <c>CachedSchemaRegistryClient</c>
/// and the serdes of other languages), with fault injection.
/// </summary>
/// <remarks>
/// <para>
/// Served: <c>GET /subjects</c>, <c>GET|DELETE /subjects/{subject}</c> (versions list / delete),
/// <c>POST /subjects/{subject}/versions</c> (register), <c>POST /subjects/{subject}</c> (look up a schema),
/// <c>GET /subjects/{subject}/versions[/{version|latest}[/schema]]</c>, <c>DELETE /subjects/{subject}/versions/{version}</c>,
/// <c>GET /subjects/{subject}/metadata</c> (the latest version), <c>GET /schemas/ids/{id}[/schema|/versions|/subjects]</c>,
/// <c>GET /schemas/types</c>, <c>POST /compatibility/subjects/{subject}/versions/{version|latest}</c>,
/// <c>GET|PUT|DELETE /config[/{subject}]</c>, <c>GET /mode</c>. Errors carry the registry's
/// <c>{"error_code": ..., "message": ...}</c> body and codes (40401 subject not found, 40402 version not found, 40403
/// schema not found, 409 incompatible, 42201 invalid schema, 42203 invalid compatibility level, 50301 unavailable).
/// </para>
/// <para>
/// Compatibility is checked for Avro schemas with Apache.Avro's schema resolution (<c>Schema.CanRead</c>): NONE,
/// BACKWARD (default), FORWARD, FULL and their _TRANSITIVE forms. JSON Schema and Protobuf schemas are stored and
/// served but their compatibility is not checked (every change is accepted). docs/testing.md lists where it differs from a
/// real registry. State lives in memory and ends with the instance.
/// </para>
/// <para>All members are thread-safe. Requests are served on thread-pool threads; no thread waits on a slow response.</para>
/// </remarks>
public sealed class EmbeddedSchemaRegistry : IDisposable, IAsyncDisposable
{
    private const string ContentType = "application/vnd.schemaregistry.v1+json";

    private static readonly string[] Levels =
        ["NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"];

    private readonly object _lock = new();
    private readonly HttpListener _listener;
    private readonly string? _authorization;
    private readonly List<StoredSchema> _schemas = [];
    private readonly Dictionary<string, List<SubjectVersion>> _subjects = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _subjectLevels = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _serving;
    private string _globalLevel = "BACKWARD";
    private bool _unavailable;
    private TimeSpan _latency;
    private long _requests;
    private int _disposed;

    private EmbeddedSchemaRegistry(HttpListener listener, string url, string? basicAuthUserInfo)
    {
        _listener = listener;
        Url = url;
        _authorization = basicAuthUserInfo is null ? null : "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(basicAuthUserInfo));
        _serving = Task.Run(ServeAsync);
    }

    /// <summary>Gets the registry's URL, <c>"http://127.0.0.1:port"</c>: the value of <c>schema.registry.url</c>.</summary>
    public string Url { get; }

    /// <summary>Gets the number of HTTP requests received so far (answered or refused).</summary>
    public long RequestCount => Interlocked.Read(ref _requests);

    /// <summary>Gets the subjects with at least one version, sorted.</summary>
    public IReadOnlyList<string> Subjects
    {
        get
        {
            lock (_lock)
            {
                return [.. _subjects.Where(s => s.Value.Any(v => !v.Deleted)).Select(s => s.Key).Order(StringComparer.Ordinal)];
            }
        }
    }

    /// <summary>Starts a registry on a port of 127.0.0.1: an ephemeral one, or <paramref name="port"/> when given.</summary>
    /// <param name="basicAuthUserInfo">
    /// When set (<c>"user:password"</c>), every request must carry these HTTP basic credentials (the client's
    /// <c>basic.auth.user.info</c>); others get 401. Default: no authentication.
    /// </param>
    /// <param name="port">The TCP port to listen on, 1 to 65535, or 0 (default) for an ephemeral port.</param>
    /// <returns>The running registry; dispose it to stop it.</returns>
    /// <exception cref="ArgumentException"><paramref name="basicAuthUserInfo"/> is not of the form <c>user:password</c>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="port"/> is outside 0 to 65535.</exception>
    /// <exception cref="InvalidOperationException">
    /// The chosen <paramref name="port"/> is in use, or no ephemeral loopback port could be bound (the message says why).
    /// </exception>
    public static EmbeddedSchemaRegistry Start(string? basicAuthUserInfo = null, int port = 0)
    {
        if (basicAuthUserInfo is not null && basicAuthUserInfo.IndexOf(':', StringComparison.Ordinal) <= 0)
        {
            throw new ArgumentException("Basic credentials must be of the form 'user:password'.", nameof(basicAuthUserInfo));
        }

        if (port is < 0 or > IPEndPoint.MaxPort)
        {
            throw new ArgumentOutOfRangeException(nameof(port), port, "The port must be between 1 and 65535, or 0 for an ephemeral port.");
        }

        HttpListenerException? last = null;
        for (var attempt = 0; attempt < (port == 0 ? 10 : 1); attempt++)
        {
            var chosen = port == 0 ? FreePort() : port;
            var listener = new HttpListener();
            var url = $"http://127.0.0.1:{chosen.ToString(CultureInfo.InvariantCulture)}";
            listener.Prefixes.Add(url + "/");
            try
            {
                listener.Start();
                return new EmbeddedSchemaRegistry(listener, url, basicAuthUserInfo);
            }
            catch (HttpListenerException e)
            {
                // Another process took the port between the probe and the bind: try another one.
                last = e;
                listener.Close();
            }
        }

        throw port == 0
            ? new InvalidOperationException($"The embedded schema registry could not bind a loopback port: {last?.Message}", last)
            : new InvalidOperationException(
                string.Create(CultureInfo.InvariantCulture, $"The embedded schema registry could not listen on 127.0.0.1:{port} (in use by another process?): {last?.Message}"),
                last);
    }

    /// <summary>
    /// Makes the registry unavailable (every request answered 503 with error code 50301, as a registry whose backing
    /// Kafka store is down) or available again. Stored schemas are kept.
    /// </summary>
    /// <param name="unavailable"><see langword="true"/> to refuse requests.</param>
    public void SetUnavailable(bool unavailable)
    {
        ThrowIfDisposed();
        Volatile.Write(ref _unavailable, unavailable);
    }

    /// <summary>Delays every response by <paramref name="latency"/> (a slow registry); <see cref="TimeSpan.Zero"/> ends it.</summary>
    /// <param name="latency">The added delay per request, 0 or more.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="latency"/> is negative.</exception>
    public void SetLatency(TimeSpan latency)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(latency, TimeSpan.Zero);
        ThrowIfDisposed();
        lock (_lock)
        {
            _latency = latency;
        }
    }

    /// <summary>Sets the compatibility level of a subject, or the global one when <paramref name="subject"/> is null.</summary>
    /// <param name="level">NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL or FULL_TRANSITIVE.</param>
    /// <param name="subject">The subject, or null for the global default (BACKWARD at start).</param>
    /// <exception cref="ArgumentException"><paramref name="level"/> is not one of the above.</exception>
    public void SetCompatibility(string level, string? subject = null)
    {
        ArgumentNullException.ThrowIfNull(level);
        ThrowIfDisposed();
        var normalized = level.ToUpperInvariant();
        if (!Levels.Contains(normalized))
        {
            throw new ArgumentException($"Unknown compatibility level '{level}'; allowed: {string.Join(", ", Levels)}.", nameof(level));
        }

        lock (_lock)
        {
            if (subject is null)
            {
                _globalLevel = normalized;
            }
            else
            {
                _subjectLevels[subject] = normalized;
            }
        }
    }

    /// <summary>Stops the server; requests in flight are abandoned.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _stopping.Cancel();
        _listener.Close();
        _stopping.Dispose();
    }

    /// <summary>Stops the server and waits for its accept loop to end.</summary>
    /// <returns>A task that completes when the server has stopped.</returns>
    public async ValueTask DisposeAsync()
    {
        Dispose();
#pragma warning disable VSTHRD003 // the accept loop is this instance's own task, started in the constructor
        await _serving.ConfigureAwait(false);
#pragma warning restore VSTHRD003
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    private async Task ServeAsync()
    {
        while (Volatile.Read(ref _disposed) == 0)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return; // closed
            }

            _ = Task.Run(() => AnswerAsync(context));
        }
    }

    private async Task AnswerAsync(HttpListenerContext context)
    {
        Interlocked.Increment(ref _requests);
        var response = context.Response;
        try
        {
            TimeSpan latency;
            lock (_lock)
            {
                latency = _latency;
            }

            if (latency > TimeSpan.Zero)
            {
                await Task.Delay(latency, _stopping.Token).ConfigureAwait(false);
            }

            string body;
            using (var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8))
            {
                body = await reader.ReadToEndAsync().ConfigureAwait(false);
            }

            var (status, json) = Volatile.Read(ref _unavailable)
                ? (503, Error(50301, "Service unavailable (the embedded schema registry was made unavailable)"))
                : _authorization is not null && context.Request.Headers["Authorization"] != _authorization
                    ? (401, Error(40101, "Unauthorized: the request's basic credentials do not match"))
                    : Route(context.Request.HttpMethod, context.Request.Url!, body);
            var bytes = Encoding.UTF8.GetBytes(json);
            response.StatusCode = status;
            response.ContentType = ContentType;
            response.ContentLength64 = bytes.Length;
            await response.OutputStream.WriteAsync(bytes, _stopping.Token).ConfigureAwait(false);
            response.Close();
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or HttpListenerException or IOException)
        {
            response.Abort(); // stopping, or the client went away
        }
    }

    private (int Status, string Json) Route(string method, Uri url, string body)
    {
        var path = url.AbsolutePath.Trim('/').Split('/', StringSplitOptions.RemoveEmptyEntries).Select(Uri.UnescapeDataString).ToArray();
        var query = System.Web.HttpUtility.ParseQueryString(url.Query);
        try
        {
            lock (_lock)
            {
                return (method, path) switch
                {
                    ("GET", ["subjects"]) => Ok(new JsonArray([.. Subjects.Select(s => JsonValue.Create(s))])),
                    ("GET", ["subjects", var s, "versions"]) => Ok(new JsonArray([.. Live(s).Select(v => JsonValue.Create(v.Version))])),
                    ("POST", ["subjects", var s, "versions"]) => Register(s, body),
                    ("POST", ["subjects", var s]) => LookUp(s, body, query["deleted"] == "true"),
                    ("DELETE", ["subjects", var s]) => DeleteSubject(s),
                    ("GET", ["subjects", var s, "versions", var v]) => Ok(Describe(s, Version(s, v, query["deleted"] == "true"))),
                    ("GET", ["subjects", var s, "versions", var v, "schema"]) => (200, _schemas[Version(s, v, false).Id - 1].Text),
                    ("DELETE", ["subjects", var s, "versions", var v]) => DeleteVersion(s, v),
                    ("GET", ["subjects", var s, "metadata"]) => Ok(Describe(s, Version(s, "latest", false))),
                    ("GET", ["schemas", "ids", var id]) => Ok(SchemaById(id)),
                    ("GET", ["schemas", "ids", var id, "schema"]) => (200, _schemas[Id(id) - 1].Text),
                    ("GET", ["schemas", "ids", var id, "subjects"]) => Ok(new JsonArray([.. Usages(Id(id)).Select(u => JsonValue.Create(u.Subject))])),
                    ("GET", ["schemas", "ids", var id, "versions"]) => Ok(new JsonArray([.. Usages(Id(id)).Select(u => (JsonNode)new JsonObject { ["subject"] = u.Subject, ["version"] = u.Version })])),
                    ("GET", ["schemas", "types"]) => Ok(new JsonArray("AVRO", "JSON", "PROTOBUF")),
                    ("POST", ["compatibility", "subjects", var s, "versions", var v]) => CheckCompatibility(s, v, body, query["verbose"] == "true"),
                    ("GET", ["config"]) => Ok(LevelObject(_globalLevel)),
                    ("PUT", ["config"]) => PutLevel(null, body),
                    ("GET", ["config", var s]) => GetSubjectLevel(s, query["defaultToGlobal"] == "true"),
                    ("PUT", ["config", var s]) => PutLevel(s, body),
                    ("DELETE", ["config", var s]) => DeleteSubjectLevel(s),
                    ("GET", ["mode"] or ["mode", _]) => Ok(new JsonObject { ["mode"] = "READWRITE" }),
                    ("GET", []) => Ok(new JsonObject()),
                    _ => (404, Error(404, $"HTTP 404 Not Found: {method} {url.AbsolutePath} is not served by the embedded schema registry")),
                };
            }
        }
        catch (RegistryError e)
        {
            return (e.Status, Error(e.Code, e.Message));
        }
    }

    private (int, string) Register(string subject, string body)
    {
        var request = ParseSchemaRequest(body);
        var versions = Live(subject, allowMissing: true);
        var existing = versions.FirstOrDefault(v => _schemas[v.Id - 1].Key == request.Key);
        if (existing is not null)
        {
            return Ok(new JsonObject { ["id"] = existing.Id });
        }

        var level = LevelOf(subject);
        var compatibility = Compatible(request, versions, level);
        if (compatibility is { } problem)
        {
            throw new RegistryError(409, 409, $"Schema being registered is incompatible with an earlier schema for subject \"{subject}\"; details: [{problem}] (compatibility level {level})");
        }

        var stored = _schemas.FirstOrDefault(s => s.Key == request.Key && s.Type == request.Type);
        if (stored is null)
        {
            stored = request with { Id = _schemas.Count + 1 };
            _schemas.Add(stored);
        }

        if (!_subjects.TryGetValue(subject, out var all))
        {
            all = [];
            _subjects[subject] = all;
        }

        all.Add(new SubjectVersion(all.Count == 0 ? 1 : all[^1].Version + 1, stored.Id));
        return Ok(new JsonObject { ["id"] = stored.Id });
    }

    private (int, string) LookUp(string subject, string body, bool includeDeleted)
    {
        var request = ParseSchemaRequest(body);
        var versions = includeDeleted ? All(subject) : Live(subject);
        var found = versions.LastOrDefault(v => _schemas[v.Id - 1].Key == request.Key)
            ?? throw new RegistryError(404, 40403, $"Schema not found: the schema is not registered under subject '{subject}'");
        return Ok(Describe(subject, found));
    }

    private (int, string) DeleteSubject(string subject)
    {
        var live = Live(subject);
        foreach (var v in live)
        {
            v.Deleted = true;
        }

        return Ok(new JsonArray([.. live.Select(v => JsonValue.Create(v.Version))]));
    }

    private (int, string) DeleteVersion(string subject, string version)
    {
        var found = Version(subject, version, false);
        found.Deleted = true;
        return Ok(JsonValue.Create(found.Version));
    }

    private (int, string) CheckCompatibility(string subject, string version, string body, bool verbose)
    {
        var request = ParseSchemaRequest(body);
        var level = LevelOf(subject);
        var against = version == "latest" && Live(subject, allowMissing: true).Count == 0
            ? []
            : level.EndsWith("_TRANSITIVE", StringComparison.Ordinal) ? Live(subject) : [Version(subject, version, false)];
        var problem = Compatible(request, against, level.Replace("_TRANSITIVE", string.Empty, StringComparison.Ordinal));
        var result = new JsonObject { ["is_compatible"] = problem is null };
        if (verbose || problem is not null)
        {
            result["messages"] = problem is null ? new JsonArray() : new JsonArray(problem);
        }

        return Ok(result);
    }

    private (int, string) PutLevel(string? subject, string body)
    {
        var level = JsonNode.Parse(body)?["compatibility"]?.GetValue<string>()?.ToUpperInvariant();
        if (level is null || !Levels.Contains(level))
        {
            throw new RegistryError(422, 42203, $"Invalid compatibility level '{level}'; allowed: {string.Join(", ", Levels)}");
        }

        if (subject is null)
        {
            _globalLevel = level;
        }
        else
        {
            _subjectLevels[subject] = level;
        }

        return Ok(new JsonObject { ["compatibility"] = level });
    }

    private (int, string) GetSubjectLevel(string subject, bool defaultToGlobal)
    {
        if (_subjectLevels.TryGetValue(subject, out var level))
        {
            return Ok(LevelObject(level));
        }

        return defaultToGlobal
            ? Ok(LevelObject(_globalLevel))
            : throw new RegistryError(404, 40408, $"Subject '{subject}' does not have subject-level compatibility configured");
    }

    private (int, string) DeleteSubjectLevel(string subject)
    {
        var level = _subjectLevels.Remove(subject, out var old) ? old : _globalLevel;
        return Ok(new JsonObject { ["compatibility"] = level });
    }

    private static JsonObject LevelObject(string level) =>

        // A real registry answers GET with "compatibilityLevel"; Confluent's .NET client reads "compatibility": both.
        new() { ["compatibilityLevel"] = level, ["compatibility"] = level };

    private string LevelOf(string subject) => _subjectLevels.TryGetValue(subject, out var level) ? level : _globalLevel;

    /// <returns>null when compatible; otherwise what is wrong.</returns>
    private string? Compatible(StoredSchema candidate, IReadOnlyList<SubjectVersion> versions, string level)
    {
        if (level == "NONE" || versions.Count == 0 || candidate.Type != "AVRO")
        {
            return null;
        }

        var against = level.EndsWith("_TRANSITIVE", StringComparison.Ordinal) ? versions : [versions[^1]];
        var backward = level.StartsWith("BACKWARD", StringComparison.Ordinal) || level.StartsWith("FULL", StringComparison.Ordinal);
        var forward = level.StartsWith("FORWARD", StringComparison.Ordinal) || level.StartsWith("FULL", StringComparison.Ordinal);
        var reader = Avro.Schema.Parse(candidate.Text);
        foreach (var version in against)
        {
            var old = _schemas[version.Id - 1];
            if (old.Type != "AVRO")
            {
                return $"version {version.Version} is a {old.Type} schema, the new one an AVRO schema";
            }

            var writer = Avro.Schema.Parse(old.Text);
            if (backward && !reader.CanRead(writer))
            {
                return $"the new schema cannot read data written with version {version.Version} (a field added without a default, a field's type changed, or a symbol removed)";
            }

            if (forward && !writer.CanRead(reader))
            {
                return $"version {version.Version} cannot read data written with the new schema (a field removed that has no default, a field's type changed, or a symbol added)";
            }
        }

        return null;
    }

    private static StoredSchema ParseSchemaRequest(string body)
    {
        JsonNode? request;
        try
        {
            request = JsonNode.Parse(body);
        }
        catch (JsonException e)
        {
            throw new RegistryError(422, 42201, $"Invalid request body: {e.Message}");
        }

        var text = request?["schema"]?.GetValue<string>() ?? throw new RegistryError(422, 42201, "Invalid schema: the request has no 'schema'");
        var type = (request?["schemaType"]?.GetValue<string>() ?? "AVRO").ToUpperInvariant();
        var references = request?["references"] is JsonArray refs ? refs.ToJsonString() : "[]";
        string key;
        try
        {
            key = type switch
            {
                "AVRO" => Avro.Schema.Parse(text).ToString(),
                "JSON" => JsonNode.Parse(text)?.ToJsonString() ?? "null",
                "PROTOBUF" => text.Trim(),
                _ => throw new RegistryError(422, 42201, $"Invalid schema type '{type}'; allowed: AVRO, JSON, PROTOBUF"),
            };
        }
        catch (Exception e) when (e is Avro.AvroException or JsonException)
        {
            throw new RegistryError(422, 42201, $"Invalid {type} schema: {e.Message}");
        }

        return new StoredSchema(0, type, text, key + references, references);
    }

    private JsonObject SchemaById(string id)
    {
        var stored = _schemas[Id(id) - 1];
        var result = new JsonObject { ["schema"] = stored.Text };
        if (stored.Type != "AVRO")
        {
            result["schemaType"] = stored.Type;
        }

        result["references"] = JsonNode.Parse(stored.References);
        return result;
    }

    private JsonObject Describe(string subject, SubjectVersion version)
    {
        var stored = _schemas[version.Id - 1];
        var result = new JsonObject { ["subject"] = subject, ["version"] = version.Version, ["id"] = version.Id, ["schema"] = stored.Text };
        if (stored.Type != "AVRO")
        {
            result["schemaType"] = stored.Type;
        }

        result["references"] = JsonNode.Parse(stored.References);
        return result;
    }

    private int Id(string text) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id >= 1 && id <= _schemas.Count
            ? id
            : throw new RegistryError(404, 40403, $"Schema {text} not found");

    private IEnumerable<(string Subject, int Version)> Usages(int id) =>
        _subjects.SelectMany(s => s.Value.Where(v => v.Id == id && !v.Deleted).Select(v => (s.Key, v.Version)));

    private List<SubjectVersion> All(string subject) =>
        _subjects.TryGetValue(subject, out var all) && all.Count > 0
            ? all
            : throw new RegistryError(404, 40401, $"Subject '{subject}' not found.");

    private List<SubjectVersion> Live(string subject, bool allowMissing = false)
    {
        var live = _subjects.TryGetValue(subject, out var all) ? all.Where(v => !v.Deleted).ToList() : [];
        return live.Count > 0 || allowMissing ? live : throw new RegistryError(404, 40401, $"Subject '{subject}' not found.");
    }

    private SubjectVersion Version(string subject, string version, bool includeDeleted)
    {
        var versions = includeDeleted ? All(subject) : Live(subject);
        if (version is "latest" or "-1")
        {
            return versions[^1];
        }

        return int.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && versions.FirstOrDefault(v => v.Version == number) is { } found
            ? found
            : throw new RegistryError(404, 40402, $"Version {version} not found.");
    }

    private static (int, string) Ok(JsonNode? node) => (200, node?.ToJsonString() ?? "null");

    private static string Error(int code, string message) => new JsonObject { ["error_code"] = code, ["message"] = message }.ToJsonString();

    private sealed record StoredSchema(int Id, string Type, string Text, string Key, string References);

    private sealed class SubjectVersion(int version, int id)
    {
        public int Version { get; } = version;

        public int Id { get; } = id;

        public bool Deleted { get; set; }
    }

    private sealed class RegistryError(int status, int code, string message) : Exception(message)
    {
        public int Status { get; } = status;

        public int Code { get; } = code;
    }
}
