using MaskFormer.Server.Hosting;

return await ServerApp.RunAsync(args).ConfigureAwait(false);
