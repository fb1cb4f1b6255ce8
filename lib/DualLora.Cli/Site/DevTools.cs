using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DualLora.Cli.Site;

/// <summary>An error the browser returned for a DevTools command, or a browser that stopped answering.</summary>
public sealed class DevToolsException(string message) : Exception(message);

/// <summary>
/// One WebSocket connection to the browser's DevTools endpoint. Pages are reached through flattened
/// sessions (Target.attachToTarget with flatten), so one connection carries every command and event.
/// </summary>
sealed class DevToolsConnection : IAsyncDisposable
{
    readonly ClientWebSocket socket = new();
    readonly ConcurrentDictionary<int, TaskCompletionSource<JsonObject>> pending = new();
    readonly CancellationTokenSource closing = new();
    readonly SemaphoreSlim sending = new(1, 1);
    Task receiving = Task.CompletedTask;
    int lastId;

    /// <summary>Called with (method, sessionId, params) for every event, on the receiving thread.</summary>
    public event Action<string, string?, JsonObject>? EventReceived;

    public static async Task<DevToolsConnection> ConnectAsync(Uri endpoint, CancellationToken cancellation)
    {
        var connection = new DevToolsConnection();
        await connection.socket.ConnectAsync(endpoint, cancellation);
        connection.receiving = Task.Run(connection.ReceiveLoop);
        return connection;
    }

    public async Task<JsonObject> SendAsync(string method, object? parameters = null, string? sessionId = null, CancellationToken cancellation = default)
    {
        int id = Interlocked.Increment(ref lastId);
        var answer = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
        pending[id] = answer;
        var message = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = JsonSerializer.SerializeToNode(parameters ?? new { }) };
        if (sessionId is not null) message["sessionId"] = sessionId;
        byte[] bytes = Encoding.UTF8.GetBytes(message.ToJsonString());
        await sending.WaitAsync(cancellation);
        try
        {
            await socket.SendAsync(bytes, WebSocketMessageType.Text, endOfMessage: true, cancellation);
        }
        finally
        {
            sending.Release();
        }
        using (cancellation.Register(() => answer.TrySetCanceled(cancellation)))
        {
            try
            {
                return await answer.Task;
            }
            finally
            {
                pending.TryRemove(id, out _);
            }
        }
    }

    async Task ReceiveLoop()
    {
        var buffer = new byte[1 << 16];
        // A screenshot of a long page arrives as one message of several megabytes, in many frames.
        var message = new MemoryStream();
        try
        {
            while (!closing.IsCancellationRequested)
            {
                var result = await socket.ReceiveAsync(buffer, closing.Token);
                if (result.MessageType == WebSocketMessageType.Close) break;
                message.Write(buffer, 0, result.Count);
                if (!result.EndOfMessage) continue;
                Dispatch(JsonNode.Parse(message.GetBuffer().AsSpan(0, (int)message.Length)) as JsonObject);
                message.SetLength(0);
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or JsonException)
        {
            // The browser went away or the connection is closing: the pending commands fail below.
        }
        foreach (var answer in pending.Values) answer.TrySetException(new DevToolsException("the browser closed the DevTools connection."));
    }

    void Dispatch(JsonObject? message)
    {
        if (message is null) return;
        if (message["id"] is JsonValue idValue && pending.TryGetValue(idValue.GetValue<int>(), out var answer))
        {
            if (message["error"] is JsonObject error) answer.TrySetException(new DevToolsException(error["message"]?.GetValue<string>() ?? error.ToJsonString()));
            else answer.TrySetResult(message["result"] as JsonObject ?? []);
        }
        else if (message["method"] is JsonValue method)
            EventReceived?.Invoke(method.GetValue<string>(), message["sessionId"]?.GetValue<string>(), message["params"] as JsonObject ?? []);
    }

    public async ValueTask DisposeAsync()
    {
        await closing.CancelAsync();
        await receiving;
        socket.Dispose();
        closing.Dispose();
        sending.Dispose();
    }
}
