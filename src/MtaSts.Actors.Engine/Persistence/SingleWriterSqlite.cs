using Akka.Configuration;

namespace MtaSts.Actors.Engine.Persistence;

/// <summary>Where the gateway selects the single-writer SQLite journal and snapshot store, and what they refuse.</summary>
public static class SingleWriterSqlite
{
    public const string JournalClass = "MtaSts.Actors.Engine.Persistence.SingleWriterSqliteJournal, MtaSts.Actors.Engine";
    public const string SnapshotStoreClass = "MtaSts.Actors.Engine.Persistence.SingleWriterSqliteSnapshotStore, MtaSts.Actors.Engine";

    /// <summary>The known-ids shortcut is only sound where this process is the only writer: an embedded SQLite file
    /// in the locked data directory. Any other provider (PostgreSQL: several nodes write) keeps the plain plugin.</summary>
    public static void Require(string pluginPath, string providerName, string? schemaName)
    {
        if (!providerName.StartsWith("SQLite", StringComparison.OrdinalIgnoreCase))
            throw new ConfigurationException($"{pluginPath}.class: the single-writer plugin runs only on the embedded SQLite " +
                $"database, not on {pluginPath}.provider-name = {providerName} (use the Akka.Persistence.Sql class)");
        if (!string.IsNullOrEmpty(schemaName))
            throw new ConfigurationException($"{pluginPath}: schema-name = {schemaName} is not supported with the embedded SQLite database");
    }
}
