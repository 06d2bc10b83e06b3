"""The Directory port on Microsoft Graph (msgraph-sdk, azure-identity) and a local Graph simulator.

May import core, msgraph-sdk/kiota, azure-identity, aiohttp (simulator only) and the stdlib.
"""
