namespace MaskFormer.Cli.Commands;

/// <summary>An exception and its inner exceptions, which is where .NET's client says what went wrong with a call.</summary>
internal static class ExceptionChain
{
    /// <summary>Whether <paramref name="error"/> or any exception inside it matches.</summary>
    public static bool Any(Exception? error, Func<Exception, bool> match)
    {
        for (; error is not null; error = error.InnerException)
        {
            if (match(error))
            {
                return true;
            }
        }

        return false;
    }
}
